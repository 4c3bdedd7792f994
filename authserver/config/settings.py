"""Settings of the authorization server (pydantic-settings, environment prefix ``CHARTER_``).

Built once at start-up, validated, and passed down; nothing reads the environment later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/charter`` or ``~/.local/share/charter``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "charter"


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``."""
    if not host:
        return False
    host = host.lower().strip("[]")
    return host in {"localhost", "::1"} or host.startswith("127.")


def split_list_setting(value: Any) -> Any:
    """A list setting from the environment: a JSON list, or words separated by commas/spaces.

    ``'["mcp", "weather"]'``, ``'mcp,weather'`` and ``'mcp weather'`` all give
    ``("mcp", "weather")``; an empty string gives ``()``. Values that are not strings (already
    parsed, e.g. keyword arguments) are returned unchanged for pydantic to validate.
    """
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a valid JSON list ({exc.msg}); or write a,b,c") from exc
        if not isinstance(parsed, list):
            raise ValueError("expected a JSON list of strings, or a,b,c")
        return tuple(parsed)
    return tuple(part for part in value.replace(",", " ").split() if part)


#: A tuple of strings read from the environment with :func:`split_list_setting`.
StrList = Annotated[tuple[str, ...], NoDecode]


class AuthServerSettings(BaseSettings):
    """Every option of the authorization server, each documented where it is defined."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_", extra="ignore")

    #: Issuer identifier (RFC 8414 §2): the public origin, no trailing slash added.
    issuer: str = "http://127.0.0.1:8000"
    #: Canonical URL of the protected MCP endpoint; defaults to ``<issuer>/mcp``.
    resource_url: str = ""
    #: Folder for the SQLite database and the key-encryption key file.
    data_dir: Path = Field(default_factory=default_data_dir)
    #: SQLAlchemy URL; defaults to ``sqlite:///<data_dir>/charter.db``.
    #: Use ``postgresql+psycopg://…`` to run many workers on one database.
    database_url: str = ""
    #: Secret that encrypts signing keys at rest. When empty, a random one is kept in
    #: ``<data_dir>/key-encryption.key`` (mode 0600). Many workers on many hosts must share it.
    key_encryption_key: SecretStr | None = None

    #: Scopes the deployment knows (published in metadata).
    #: In the environment: a JSON list or comma/space-separated words (``mcp,notes:read``).
    scopes_supported: StrList = ("mcp", "notes:read", "notes:write")
    #: Scope granted when a client asks for none.
    default_scope: str = "mcp"

    #: Lifetime of an access token (RFC 9068 JWT), seconds.
    access_token_ttl: int = Field(default=3600, ge=30, le=86400)
    #: Lifetime of an authorization code, seconds (RFC 9700 §4.5: short; at most 10 minutes).
    authorization_code_ttl: int = Field(default=60, ge=5, le=600)
    #: A refresh token dies when unused this long (idle expiry), seconds.
    refresh_token_idle_ttl: int = Field(default=14 * 86400, ge=60)
    #: A grant's refresh tokens all die this long after the grant began (absolute expiry), seconds.
    refresh_token_absolute_ttl: int = Field(default=90 * 86400, ge=60)
    #: A rotated refresh token presented again within this many seconds is refused without
    #: revoking the grant (a client racing itself); later, reuse revokes the whole grant.
    refresh_reuse_grace_seconds: int = Field(default=10, ge=0, le=120)
    #: How long a user's consent is remembered, seconds.
    consent_ttl: int = Field(default=30 * 86400, ge=0)
    #: How long a browser login lasts, seconds.
    login_session_ttl: int = Field(default=12 * 3600, ge=60)
    #: Clock leeway for JWT time claims, seconds.
    leeway_seconds: int = Field(default=30, ge=0, le=300)

    #: Allow RFC 7591 open dynamic client registration.
    registration_open: bool = True
    #: Seconds between background housekeeping runs of ``charter serve`` (purge of expired
    #: rows, reaping of never-used clients); 0 turns it off.
    maintenance_interval_seconds: int = Field(default=300, ge=0)
    #: Dynamically registered clients never used are deleted after this many seconds.
    unused_client_ttl: int = Field(default=86400, ge=60)
    #: Registrations allowed per client IP per minute.
    registration_rate_per_minute: int = Field(default=30, ge=1)
    #: New sign-in requests (pending authorizations, kept 30 minutes) allowed per client IP
    #: (IPv6: per /64) per minute; more get a 429 page.
    authorize_rate_per_minute: int = Field(default=60, ge=1)
    #: Failed logins/secrets allowed per account or client per 5 minutes before throttling
    #: (logins: per username and per username+IP; a client IP may fail 5 times as often).
    failed_auth_limit: int = Field(default=10, ge=1)

    #: Accept client ID metadata documents (an https URL as ``client_id``).
    client_id_metadata_documents: bool = True
    #: ``host`` or ``host:port`` entries the SSRF guard lets through even when they resolve to
    #: private or loopback addresses (for tests and private deployments).
    ssrf_allowed_hosts: StrList = ()
    #: Allow ``http`` (not only https) metadata document URLs for the hosts above (tests only).
    ssrf_allow_http: bool = False

    #: How long a new signing key is published before it signs, seconds. Longer than every
    #: JWKS cache (the resource server's 60 s, the key store's 5 s) so that no worker signs
    #: with a key its peers have not seen yet (S63).
    key_publish_ahead_seconds: int = Field(default=120, ge=0)

    @field_validator("scopes_supported", "ssrf_allowed_hosts", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_list_setting(value)

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"issuer must be an absolute URL, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("issuer must not have a query or fragment (RFC 8414 §2)")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "issuer must use https outside localhost; put Charter behind a TLS proxy and "
                "set --issuer https://your.host"
            )
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _key_encryption_key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value()) < 16:
            raise ValueError(
                "key_encryption_key must be at least 16 characters; generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @model_validator(mode="after")
    def _defaults(self) -> AuthServerSettings:
        if not self.resource_url:
            self.resource_url = self.issuer.rstrip("/") + "/mcp"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'charter.db'}"
        if self.default_scope:
            unknown = set(self.default_scope.split()) - set(self.scopes_supported)
            if unknown:
                raise ValueError(f"default_scope has unknown scopes: {sorted(unknown)}")
        return self

    @property
    def issuer_origin(self) -> str:
        """Scheme and authority of the issuer."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def issuer_path(self) -> str:
        """Path component of the issuer ('' for an origin issuer)."""
        return urlsplit(self.issuer).path.rstrip("/")

    def endpoint_url(self, path: str) -> str:
        """Absolute URL of an endpoint served under the issuer."""
        return self.issuer.rstrip("/") + path
