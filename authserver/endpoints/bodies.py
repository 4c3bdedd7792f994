"""Request bodies: one bounded reader for every endpoint that takes a body (S19, S48).

:func:`read_body` checks the media type, the declared ``Content-Length`` and the bytes actually
received against a cap before anything is parsed. On top of it:

- :func:`read_browser_form` — the sign-in pages' forms (every value of each field, as sent);
- :func:`read_oauth_form` — token, revocation and introspection requests (RFC 6749 §3.2: POST,
  each parameter at most once, ``resource`` repeatable only to be refused later, RFC 8707 §2;
  credentials never in the URL);
- :func:`read_json_object` — client registration (RFC 7591 §3.1).

The OAuth and JSON readers let no NUL character through (:mod:`authserver.text_input`, S102);
the browser forms' values are only compared or hashed (a NUL in a user name is an unknown user,
:func:`authserver.accounts.users.username_key`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from authserver.browser.forms import Form
from authserver.endpoints.client_address import client_ip
from authserver.errors import InvalidRequestError
from authserver.text_input import has_nul, json_has_nul

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE = "application/json"
#: Largest form body accepted (sign-in pages, token, revocation, introspection), bytes.
MAX_FORM_BYTES = 64 * 1024
#: Parameters that must never travel in a URL (they end up in logs and browser history).
SECRET_QUERY_PARAMETERS = frozenset(
    {"client_secret", "code", "code_verifier", "refresh_token", "token", "client_assertion"}
)
#: OAuth parameters that may appear several times (to be refused with a precise error later).
MULTI_VALUED = frozenset({"resource"})


class BodyRefusedError(Exception):
    """The body was not read: wrong media type, or larger than allowed."""


class WrongMediaTypeError(BodyRefusedError):
    """The ``Content-Type`` is not the one the endpoint takes."""


class OversizedBodyError(BodyRefusedError):
    """The body (declared or received) is larger than the cap."""


def media_type_of(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, *, media_type: str, max_bytes: int) -> bytes:
    """The whole body when it has ``media_type`` and at most ``max_bytes`` bytes."""
    if media_type_of(request) != media_type:
        raise WrongMediaTypeError(f"the body must be {media_type}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OversizedBodyError(f"the body must be at most {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise OversizedBodyError(f"the body must be at most {max_bytes} bytes")
    return bytes(body)


async def read_browser_form(request: Request) -> Form | None:
    """A sign-in page's form post, or None when the body is not one (or too large)."""
    try:
        body = await read_body(request, media_type=FORM_MEDIA_TYPE, max_bytes=MAX_FORM_BYTES)
    except BodyRefusedError:
        return None
    form: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


@dataclass(frozen=True)
class FormRequest:
    """A validated OAuth form POST: single values, ``resource`` values, headers, client IP."""

    form: dict[str, str]
    resources: list[str]
    headers: dict[str, str]
    ip: str | None


def _single_valued(body: bytes) -> tuple[dict[str, str], list[str]]:
    """The parameters of an OAuth form body, each at most once (``resource`` aside)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the body is not valid form data") from exc
    form: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if has_nul((name, value)):
            raise InvalidRequestError("parameters must not contain NUL characters")
        if name in MULTI_VALUED:
            resources.append(value)
        elif name in form:
            raise InvalidRequestError(f"parameter {name!r} is repeated")
        else:
            form[name] = value
    return form, resources


async def read_oauth_form(request: Request) -> FormRequest:
    """Parse an OAuth form POST strictly; raise ``invalid_request`` for anything else."""
    if request.method != "POST":
        raise InvalidRequestError("use POST")
    if media_type_of(request) != FORM_MEDIA_TYPE:
        raise InvalidRequestError(f"the body must be {FORM_MEDIA_TYPE}")
    if SECRET_QUERY_PARAMETERS & set(request.query_params.keys()):
        raise InvalidRequestError("credentials and tokens must be sent in the body, not the URL")
    try:
        body = await read_body(request, media_type=FORM_MEDIA_TYPE, max_bytes=MAX_FORM_BYTES)
    except BodyRefusedError as exc:
        raise InvalidRequestError("request body too large") from exc
    form, resources = _single_valued(body)
    headers = {key.lower(): value for key, value in request.headers.items()}
    return FormRequest(form=form, resources=resources, headers=headers, ip=client_ip(request))


async def read_json_object(request: Request, *, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object; :class:`BodyRefusedError` or :class:`ValueError` otherwise."""
    body = await read_body(request, media_type=JSON_MEDIA_TYPE, max_bytes=max_bytes)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("the request body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise ValueError("the request body must be a JSON object")
    if json_has_nul(document):
        raise ValueError("the request body must not contain NUL characters")
    return document
