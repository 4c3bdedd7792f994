"""Client metadata validation shared by dynamic registration, metadata documents and the CLI.

Implements the metadata rules of RFC 7591 §2 (fields, defaults, grant/response type
consistency) and the size caps of S48; the redirect URI and ``application_type`` rules are in
:mod:`authserver.clients.redirect_uris`.

Only known fields are kept, each bounded; anything else the client sends is ignored (S46).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authserver.clients.redirect_uris import (
    APPLICATION_TYPES,
    check_application_type,
    has_control_characters,
    validate_redirect_uri,
)
from authserver.errors import (
    InvalidClientMetadataError,
    InvalidRedirectUriError,
    InvalidSoftwareStatementError,
)
from authserver.oauth.grants.registry import (
    GrantTypeError,
    check_grant_types,
    needs_redirect_uri,
    registered_response_types,
    response_types_for,
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

#: The authentication method of public clients (RFC 7591 §2).
PUBLIC_AUTH_METHOD = "none"
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
#: Authentication methods a dynamically registered client may pick.
DCR_AUTH_METHODS = frozenset({PUBLIC_AUTH_METHOD, *SHARED_SECRET_METHODS})
#: RFC 7591 §2: the default when ``token_endpoint_auth_method`` is omitted.
DEFAULT_AUTH_METHOD = "client_secret_basic"

_HTTP_URI_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_PLAIN_STRING_FIELDS = ("software_id", "software_version")


def validate_web_uri(name: str, value: Any) -> str:
    """An informational https URI (``client_uri``, ``logo_uri``…); ``invalid_client_metadata``."""
    if not isinstance(value, str) or not value or len(value) > MAX_STRING_LENGTH:
        raise InvalidClientMetadataError(f"{name} must be an https URI of at most 2048 characters")
    if has_control_characters(value) or "#" in value:
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

    def apply_to(self, client: Client, *, now: int, fingerprint: str | None) -> None:
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


def new_client(
    client_id: str,
    kind: str,
    metadata: ClientMetadata,
    *,
    now: int,
    fingerprint: str | None = None,
    secret_hash: str | None = None,
    registration_token_hash: str | None = None,
    registered_from: str | None = None,
    expires_at: int | None = None,
) -> Client:
    """The one way a :class:`Client` row is made (registration, metadata documents, the CLI):
    enabled, never used, its columns and stored metadata copied from ``metadata``.

    ``secret_hash`` and ``registration_token_hash`` are hashes only (S56); the secret never
    expires (``secret_expires_at`` 0, RFC 7591 §3.2.1).
    """
    client = Client(
        client_id=client_id,
        kind=kind,
        secret_hash=secret_hash,
        secret_expires_at=0,
        registration_token_hash=registration_token_hash,
        created_at=now,
        last_used_at=None,
        expires_at=expires_at,
        disabled=False,
        registered_from=registered_from,
    )
    metadata.apply_to(client, now=now, fingerprint=fingerprint)
    return client


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


def _auth_method(
    body: Mapping[str, Any], auth_methods: Collection[str], default_auth_method: str
) -> str:
    method = _string(body, "token_endpoint_auth_method") or default_auth_method
    if method not in auth_methods:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method must be one of: {', '.join(sorted(auth_methods))}"
        )
    return method


def _grant_types(body: Mapping[str, Any], *, public: bool, administrator: bool) -> list[str]:
    """The grant types asked for (``authorization_code`` by default), checked against the
    rules of :mod:`authserver.oauth.grants.registry`."""
    grant_types = _string_list(body, "grant_types") or ["authorization_code"]
    try:
        check_grant_types(grant_types, confidential=not public, administrator=administrator)
    except GrantTypeError as exc:
        raise InvalidClientMetadataError(str(exc)) from exc
    return grant_types


def _response_types(body: Mapping[str, Any], grant_types: list[str]) -> list[str]:
    """The response types, which must be those of the grant types (RFC 7591 §2.1)."""
    expected = list(response_types_for(grant_types))
    response_types = _string_list(body, "response_types")
    if response_types is None:
        return expected
    if set(response_types) - set(registered_response_types()):
        raise InvalidClientMetadataError("response_types may only contain 'code'")
    if set(response_types) != set(expected):
        raise InvalidClientMetadataError(
            "the authorization_code grant and the 'code' response type go together (RFC 7591 §2.1)"
        )
    return response_types


def _redirect_uris(body: Mapping[str, Any], grant_types: list[str]) -> list[str]:
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
    if needs_redirect_uri(grant_types) and not redirect_uris:
        raise InvalidRedirectUriError("redirect_uris is required for the authorization_code grant")
    return redirect_uris


def _informational(body: Mapping[str, Any]) -> dict[str, Any]:
    """The informational members kept (URIs, software id and version, contacts), bounded."""
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
    return extra


def _application_type(body: Mapping[str, Any], redirect_uris: list[str]) -> dict[str, Any]:
    """``application_type`` (``web`` or ``native``) when sent, its redirect rules checked."""
    application_type = _string(body, "application_type")
    if application_type is None:
        return {}
    if application_type not in APPLICATION_TYPES:
        raise InvalidClientMetadataError('application_type must be "web" or "native"')
    check_application_type(application_type, redirect_uris)
    return {"application_type": application_type}


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
    not support them (S47). Grants meant for administrator-made clients only
    (``client_credentials``, which issues tokens with no user behind them) are refused unless
    ``allow_client_credentials``. Raises ``invalid_redirect_uri`` or ``invalid_client_metadata``.
    """
    if not isinstance(body, Mapping):
        raise InvalidClientMetadataError("client metadata must be a JSON object")
    if "software_statement" in body:
        raise InvalidSoftwareStatementError("software statements are not supported")
    method = _auth_method(body, auth_methods, default_auth_method)
    grant_types = _grant_types(
        body, public=method == PUBLIC_AUTH_METHOD, administrator=allow_client_credentials
    )
    response_types = _response_types(body, grant_types)
    redirect_uris = _redirect_uris(body, grant_types)
    scope = _normalise_scope(
        _string(body, "scope"), scopes_supported, drop_unknown=drop_unknown_scopes
    )
    return ClientMetadata(
        redirect_uris=tuple(redirect_uris),
        grant_types=tuple(grant_types),
        response_types=tuple(response_types),
        token_endpoint_auth_method=method,
        scope=scope,
        client_name=_string(body, "client_name", max_length=MAX_CLIENT_NAME_LENGTH),
        extra={**_informational(body), **_application_type(body, redirect_uris)},
    )
