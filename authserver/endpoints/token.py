"""The token endpoint (RFC 6749 §3.2, §5; OAuth 2.1 §3.2).

POST with an ``application/x-www-form-urlencoded`` body only; each parameter at most once
(``resource`` may repeat only to be refused as ``invalid_target``, RFC 8707 §2); credentials
never in the query (S19). Every response carries ``Cache-Control: no-store`` and
``Pragma: no-cache``; CORS is allowed (S8). The grant work runs in a thread
(:func:`authserver.oauth.adapter.token_response`).

:func:`read_form` is shared with the revocation and introspection endpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.context import AuthServer
from authserver.endpoints.client_address import client_ip
from authserver.endpoints.cors import allow_cors
from authserver.errors import NO_STORE_HEADERS, InvalidRequestError, OAuthError
from authserver.oauth.adapter import token_response

logger = logging.getLogger("charter.authserver.token")

MAX_BODY_BYTES = 64 * 1024
#: Parameters that must never travel in a URL (they end up in logs and browser history).
SECRET_QUERY_PARAMETERS = frozenset(
    {"client_secret", "code", "code_verifier", "refresh_token", "token", "client_assertion"}
)
#: Parameters that may appear several times (to be refused with a precise error later).
MULTI_VALUED = frozenset({"resource"})


@dataclass(frozen=True)
class FormRequest:
    """A validated form POST: single values, repeated ``resource`` values, headers, peer IP."""

    form: dict[str, str]
    resources: list[str]
    headers: dict[str, str]
    ip: str | None


async def read_form(request: Request) -> FormRequest:
    """Parse a form POST strictly; raise ``invalid_request`` for anything else."""
    if request.method != "POST":
        raise InvalidRequestError("use POST")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
    if SECRET_QUERY_PARAMETERS & set(request.query_params.keys()):
        raise InvalidRequestError("credentials and tokens must be sent in the body, not the URL")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise InvalidRequestError("request body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InvalidRequestError("request body too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the body is not valid form data") from exc
    form: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if name in MULTI_VALUED:
            resources.append(value)
        elif name in form:
            raise InvalidRequestError(f"parameter {name!r} is repeated")
        else:
            form[name] = value
    headers = {key.lower(): value for key, value in request.headers.items()}
    return FormRequest(form=form, resources=resources, headers=headers, ip=client_ip(request))


def error_response(exc: OAuthError) -> Response:
    """The JSON error response, with the internal detail logged (never sent)."""
    if exc.detail:
        logger.info("%s: %s", exc.error, exc.detail)
    return exc.to_response()


def method_not_allowed(allowed: str) -> Response:
    """405 with the OAuth error body and ``no-store``."""
    return JSONResponse(
        {"error": "invalid_request", "error_description": f"use {allowed}"},
        status_code=405,
        headers={**NO_STORE_HEADERS, "Allow": f"{allowed}, OPTIONS"},
    )


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/token`` (POST; GET answers 405; OPTIONS for CORS preflights)."""

    async def token(request: Request) -> Response:
        if request.method != "POST":
            return method_not_allowed("POST")
        try:
            parsed = await read_form(request)
            if not parsed.form.get("grant_type"):
                raise InvalidRequestError("grant_type is required")
            status, body = await run_in_threadpool(
                token_response,
                server,
                parsed.form,
                parsed.resources,
                parsed.headers,
                ip=parsed.ip,
            )
        except OAuthError as exc:
            return error_response(exc)
        return JSONResponse(body, status_code=status, headers=dict(NO_STORE_HEADERS))

    endpoint = allow_cors(token, ["POST"])
    return [Route("/token", endpoint, methods=["GET", "POST", "OPTIONS"])]
