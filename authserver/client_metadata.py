"""Client metadata validation shared by dynamic registration, metadata documents and the CLI.

Implements the metadata rules of RFC 7591 §2 (fields, defaults, grant/response type
consistency), redirect URI rules of RFC 8252 §7 (loopback ``http``, private-use schemes) and
OAuth 2.1 §2.3.1 (no fragments, exact absolute URIs), the ``application_type`` of OpenID
Connect Dynamic Client Registration 1.0 §2 that MCP 2026-07-28 asks clients to send (SEP-837:
``web`` redirects only to https on a non-loopback host, ``native`` only to loopback http or a
private-use scheme; when absent no extra rule applies), and the size caps of S48.

Only known fields are kept, each bounded; anything else the client sends is ignored (S46).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authserver.errors import (
    InvalidClientMetadataError,
    InvalidRedirectUriError,
    InvalidSoftwareStatementError,
)
from authserver.storage.models import Client

#: Largest registration request body accepted, bytes.
MAX_BODY_BYTES = 16 * 1024
#: Most redirect URIs a client may register.
MAX_REDIRECT_URIS = 10
#: Longest string value accepted in any metadata field, characters.
MAX_STRING_LENGTH = 2048
#: Longest ``client_name``, characters.
MAX_CLIENT_NAME_LENGTH = 256
#: Most entries in a list field other than ``redirect_uris``.
MAX_LIST_ITEMS = 10

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
RESPONSE_TYPES = frozenset({"code"})
#: The authentication method of public clients (RFC 7591 §2).
PUBLIC_AUTH_METHOD = "none"
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
#: Authentication methods a dynamically registered client may pick.
DCR_AUTH_METHODS = frozenset({PUBLIC_AUTH_METHOD, *SHARED_SECRET_METHODS})
#: RFC 7591 §2: the default when ``token_endpoint_auth_method`` is omitted.
DEFAULT_AUTH_METHOD = "client_secret_basic"

LOOPBACK_REDIRECT_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss"}
)
#: RFC 8252 §7.1: private-use schemes are reverse domain names (contain a period).
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")
_HTTP_URI_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
APPLICATION_TYPES = frozenset({"web", "native"})
_PLAIN_STRING_FIELDS = ("software_id", "software_version")


def _has_control_characters(value: str) -> bool:
    return any(ord(char) < 0x21 or ord(char) == 0x7F for char in value)


def validate_redirect_uri(uri: Any) -> str:
    """Return ``uri`` when it is an acceptable redirect URI; raise ``invalid_redirect_uri``.

    Accepted: ``https`` URIs; ``http`` only for the loopback hosts ``127.0.0.1``, ``[::1]``
    and ``localhost`` (RFC 8252 §7.3); private-use schemes in reverse-DNS form such as
    ``com.example.app:/cb`` (RFC 8252 §7.1). Refused: other schemes (``javascript:``,
    ``data:``, ``file:``…), relative URIs, fragments, wildcards, user information, whitespace.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidRedirectUriError("each redirect URI must be a non-empty string")
    if len(uri) > MAX_STRING_LENGTH:
        raise InvalidRedirectUriError("redirect URI is too long")
    if _has_control_characters(uri):
        raise InvalidRedirectUriError("redirect URI must not contain spaces or control characters")
    if "#" in uri:
        raise InvalidRedirectUriError("redirect URI must not contain a fragment")
    if "*" in uri:
        raise InvalidRedirectUriError("redirect URI must not contain wildcards")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise InvalidRedirectUriError("redirect URI is not a valid URI") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidRedirectUriError("redirect URI must be absolute")
    if scheme in FORBIDDEN_SCHEMES:
        raise InvalidRedirectUriError(f"redirect URI scheme {scheme!r} is not allowed")
    if "@" in parts.netloc:
        raise InvalidRedirectUriError("redirect URI must not contain user information")
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidRedirectUriError("redirect URI must name a host")
        if scheme == "http" and host not in LOOPBACK_REDIRECT_HOSTS:
            raise InvalidRedirectUriError(
                "http redirect URIs are allowed only for 127.0.0.1, [::1] and localhost"
            )
        return uri
    if _PRIVATE_SCHEME.match(scheme):
        if parts.netloc:
            raise InvalidRedirectUriError(
                "private-use scheme redirect URIs take a path only, e.g. com.example.app:/callback"
            )
        if not parts.path.startswith("/"):
            raise InvalidRedirectUriError("private-use scheme redirect URIs need a path")
        return uri
    raise InvalidRedirectUriError(
        "redirect URI must be https, loopback http, or a reverse-DNS private-use scheme"
    )


def check_application_type(application_type: str, redirect_uris: Collection[str]) -> None:
    """OpenID Connect DCR 1.0 §2: the redirect URIs a ``web`` or ``native`` client may use."""
    for uri in redirect_uris:
        parts = urlsplit(uri)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        loopback = host in LOOPBACK_REDIRECT_HOSTS
        private_use = _PRIVATE_SCHEME.match(scheme) is not None
        if application_type == "web" and (scheme != "https" or loopback):
            raise InvalidRedirectUriError(
                "a web application redirects to https on a non-loopback host; "
                'register loopback or private-use redirect URIs with application_type "native"'
            )
        if application_type == "native" and not ((scheme == "http" and loopback) or private_use):
            raise InvalidRedirectUriError(
                "a native application redirects to loopback http (127.0.0.1, [::1], localhost) "
                'or a private-use scheme; use application_type "web" for https redirect URIs'
            )


def validate_web_uri(name: str, value: Any) -> str:
    """An informational https URI (``client_uri``, ``logo_uri``…); ``invalid_client_metadata``."""
    if not isinstance(value, str) or not value or len(value) > MAX_STRING_LENGTH:
        raise InvalidClientMetadataError(f"{name} must be an https URI of at most 2048 characters")
    if _has_control_characters(value) or "#" in value:
        raise InvalidClientMetadataError(f"{name} must be an https URI without a fragment")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidClientMetadataError(f"{name} is not a valid URI") from exc
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        raise InvalidClientMetadataError(f"{name} must be an https URI with a host and no userinfo")
    return value


def _string(
    body: Mapping[str, Any], name: str, *, max_length: int = MAX_STRING_LENGTH
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidClientMetadataError(f"{name} must be a string")
    if len(value) > max_length:
        raise InvalidClientMetadataError(f"{name} must be at most {max_length} characters")
    return value


def _string_list(
    body: Mapping[str, Any], name: str, *, max_items: int = MAX_LIST_ITEMS
) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadataError(f"{name} must be an array of strings")
    if len(value) > max_items:
        raise InvalidClientMetadataError(f"{name} may hold at most {max_items} entries")
    if any(len(item) > MAX_STRING_LENGTH for item in value):
        raise InvalidClientMetadataError(f"each entry of {name} must be at most 2048 characters")
    return list(dict.fromkeys(value))


@dataclass(frozen=True)
class ClientMetadata:
    """The normalised, bounded metadata of one client (RFC 7591 §2), no secrets."""

    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: str
    scope: str = ""
    client_name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_public(self) -> bool:
        """True when the client authenticates with nothing (``none``)."""
        return self.token_endpoint_auth_method == PUBLIC_AUTH_METHOD

    def to_dict(self) -> dict[str, Any]:
        """The registered metadata as returned to the client (RFC 7591 §3.2.1)."""
        document: dict[str, Any] = {
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.scope:
            document["scope"] = self.scope
        if self.client_name is not None:
            document["client_name"] = self.client_name
        for key in sorted(self.extra):
            document[key] = self.extra[key]
        return document

    def apply_to(self, client: Client, *, now: int, fingerprint: str) -> None:
        """Copy this metadata onto ``client`` (registration, update, or a fetched document)."""
        client.client_name = self.client_name
        client.redirect_uris = list(self.redirect_uris)
        client.grant_types = list(self.grant_types)
        client.response_types = list(self.response_types)
        client.token_endpoint_auth_method = self.token_endpoint_auth_method
        client.scope = self.scope
        client.client_metadata = self.to_dict()
        client.metadata_fingerprint = fingerprint
        client.updated_at = now

    def fingerprint(self, *salt: str) -> str:
        """SHA-256 of the canonical JSON of this metadata (and ``salt``), for idempotency."""
        canonical = json.dumps(
            [self.to_dict(), *salt], sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _normalise_scope(
    value: str | None, scopes_supported: Collection[str], *, drop_unknown: bool
) -> str:
    if not value:
        return ""
    requested = list(dict.fromkeys(value.split()))
    unknown = [scope for scope in requested if scope not in scopes_supported]
    if unknown and not drop_unknown:
        raise InvalidClientMetadataError(f"unknown scope values: {' '.join(sorted(unknown))}")
    return " ".join(scope for scope in requested if scope in scopes_supported)


def normalise_registration(
    body: Mapping[str, Any],
    *,
    scopes_supported: Collection[str],
    auth_methods: Collection[str] = DCR_AUTH_METHODS,
    default_auth_method: str = DEFAULT_AUTH_METHOD,
    drop_unknown_scopes: bool = False,
    allow_client_credentials: bool = False,
) -> ClientMetadata:
    """Validate a registration request or metadata document and keep only known fields.

    ``client_id``, ``client_secret`` and every unknown member are ignored (S46). A
    ``software_statement`` is refused with ``invalid_software_statement``: this server does
    not support them (S47). The ``client_credentials`` grant is refused unless
    ``allow_client_credentials``: it issues tokens with no user behind them, so only clients
    an administrator creates may use it, never self-registered ones. Raises
    ``invalid_redirect_uri`` or ``invalid_client_metadata``.
    """
    if not isinstance(body, Mapping):
        raise InvalidClientMetadataError("client metadata must be a JSON object")
    if "software_statement" in body:
        raise InvalidSoftwareStatementError("software statements are not supported")

    method = _string(body, "token_endpoint_auth_method") or default_auth_method
    if method not in auth_methods:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method must be one of: {', '.join(sorted(auth_methods))}"
        )

    grant_types = _string_list(body, "grant_types") or ["authorization_code"]
    unknown_grants = set(grant_types) - GRANT_TYPES
    if unknown_grants:
        raise InvalidClientMetadataError(f"unsupported grant_types: {sorted(unknown_grants)}")
    uses_code = "authorization_code" in grant_types
    if "refresh_token" in grant_types and not uses_code:
        raise InvalidClientMetadataError("refresh_token needs the authorization_code grant")
    if "client_credentials" in grant_types and not allow_client_credentials:
        raise InvalidClientMetadataError(
            "the client_credentials grant is not available to dynamically registered or "
            "metadata document clients; an administrator must create such a client "
            "(charter clients add --grant-type client_credentials)"
        )
    if "client_credentials" in grant_types and method == PUBLIC_AUTH_METHOD:
        raise InvalidClientMetadataError("client_credentials needs a confidential client")

    response_types = _string_list(body, "response_types")
    if response_types is None:
        response_types = ["code"] if uses_code else []
    if set(response_types) - RESPONSE_TYPES:
        raise InvalidClientMetadataError("response_types may only contain 'code'")
    if uses_code != ("code" in response_types):
        raise InvalidClientMetadataError(
            "the authorization_code grant and the 'code' response type go together (RFC 7591 §2.1)"
        )

    raw_uris = body.get("redirect_uris")
    if raw_uris is None:
        raw_uris = []
    if not isinstance(raw_uris, list):
        raise InvalidRedirectUriError("redirect_uris must be an array of strings")
    if len(raw_uris) > MAX_REDIRECT_URIS:
        raise InvalidClientMetadataError(
            f"at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
        )
    redirect_uris = list(dict.fromkeys(validate_redirect_uri(uri) for uri in raw_uris))
    if uses_code and not redirect_uris:
        raise InvalidRedirectUriError("redirect_uris is required for the authorization_code grant")

    scope = _normalise_scope(
        _string(body, "scope"), scopes_supported, drop_unknown=drop_unknown_scopes
    )
    client_name = _string(body, "client_name", max_length=MAX_CLIENT_NAME_LENGTH)

    extra: dict[str, Any] = {}
    for name in _HTTP_URI_FIELDS:
        if body.get(name) is not None:
            extra[name] = validate_web_uri(name, body[name])
    for name in _PLAIN_STRING_FIELDS:
        value = _string(body, name, max_length=MAX_CLIENT_NAME_LENGTH)
        if value is not None:
            extra[name] = value
    contacts = _string_list(body, "contacts")
    if contacts:
        extra["contacts"] = contacts
    application_type = _string(body, "application_type")
    if application_type is not None:
        if application_type not in APPLICATION_TYPES:
            raise InvalidClientMetadataError('application_type must be "web" or "native"')
        check_application_type(application_type, redirect_uris)
        extra["application_type"] = application_type

    return ClientMetadata(
        redirect_uris=tuple(redirect_uris),
        grant_types=tuple(grant_types),
        response_types=tuple(response_types),
        token_endpoint_auth_method=method,
        scope=scope,
        client_name=client_name,
        extra=extra,
    )
