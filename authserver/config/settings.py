"""The one settings model of a Charter deployment (pydantic-settings, prefix ``CHARTER_``).

Every option of the deployment is a field of :class:`CharterSettings`, documented where it is
defined; nothing else declares settings. From this one model:

- the authorization server reads its settings directly (``AuthServer.settings``);
- the composition root derives the MCP server's ``ResourceServerSettings`` and the transport's
  ``TransportOptions`` by field name (:meth:`CharterSettings.values_for`,
  :mod:`authserver.deployment`): a field named like one of theirs reaches them;
- ``charter serve`` gets one option per field (:mod:`authserver.config.options`), workers get
  the values through ``CHARTER_*`` variables (:meth:`CharterSettings.environment`), and the
  README's configuration table is generated (:mod:`authserver.config.table`).

Adding a setting is adding a field here. Settings are built once at start-up, validated (https
issuer outside localhost, no default secrets) and passed down; nothing reads the environment
later.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from authserver.config.options import Option, command_line_fields, env_name
from authserver.config.servers import BASE_SCOPE, McpServerConfig, load_servers
from authserver.config.trusted_proxies import DEFAULT_TRUSTED_PROXIES, parse_trusted_proxies

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: Hosts meaning "every interface"; the default issuer then names the loopback address.
ANY_HOST = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not bound here

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


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


def default_issuer(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a loopback host (no trailing slash); any other host needs an
    explicit issuer."""
    if host in ANY_HOST:
        host = "127.0.0.1"
    if not is_loopback_host(host):
        raise ValueError(
            f"--issuer is required when listening on {host}: give the public https URL clients "
            "use (for example --issuer https://mcp.example.com behind a TLS proxy)"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


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


class CharterSettings(BaseSettings):
    """Every setting of a deployment: the authorization server, the MCP server, ``serve``."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_", extra="ignore")

    # -- Where the deployment lives -----------------------------------------------------------

    issuer: Annotated[
        str, Option(metavar="URL", shown_default="`http://HOST:PORT` (`http://127.0.0.1:8000`)")
    ] = Field(
        default="",
        description="Public origin of the server (RFC 8414 issuer); must be https outside "
        "localhost. Behind a proxy: its public https URL (a trailing `/` is dropped).",
    )
    resource_url: Annotated[str, Option(metavar="URL", shown_default="`<issuer>/mcp`")] = Field(
        default="",
        description="Canonical URL of the MCP endpoint (the tokens' audience).",
    )
    data_dir: Annotated[
        Path,
        Option(shown_default="`~/.local/share/charter` (`$XDG_DATA_HOME/charter`)"),
    ] = Field(
        default_factory=default_data_dir,
        description=(
            "Folder of the SQLite database (beside it SQLite's `-wal` and `-shm` files and "
            "Charter's `-charter-writer.lock`, `-charter-intent.lock` and `-charter-purge.lock`, "
            "by which the processes sharing the file take turns to write and to purge) and the "
            "key-encryption key file."
        ),
    )
    database_url: Annotated[
        str, Option(metavar="URL", shown_default="`sqlite:///<data_dir>/charter.db`")
    ] = Field(
        default="",
        description="SQLAlchemy URL; `postgresql+psycopg://…` for many workers.",
    )
    key_encryption_key: Annotated[
        SecretStr | None,
        Option(command_line=False, shown_default="random, kept in `<data_dir>/key-encryption.key`"),
    ] = Field(
        default=None,
        description="Secret that encrypts signing keys at rest; set the same value on every host.",
    )

    # -- Scopes and lifetimes -----------------------------------------------------------------

    scopes_supported: Annotated[StrList, Option(metavar="SCOPE")] = Field(
        default=("mcp", "notes:read", "notes:write"),
        description="Scopes the deployment knows (published in metadata); comma-separated or a "
        "JSON list.",
    )
    default_scope: str = Field(
        default="mcp", description="Scope granted when a client asks for none."
    )
    access_token_ttl: int = Field(
        default=3600,
        ge=30,
        le=86400,
        description="Access token (RFC 9068 JWT) lifetime, seconds (30 to 86400).",
    )
    authorization_code_ttl: int = Field(
        default=60,
        ge=5,
        le=600,
        description="Authorization code lifetime, seconds (5 to 600).",
    )
    refresh_token_idle_ttl: Annotated[int, Option(shown_default="`1209600` (14 days)")] = Field(
        default=14 * 86400,
        ge=60,
        description="A refresh token dies when unused this long, seconds.",
    )
    refresh_token_absolute_ttl: Annotated[int, Option(shown_default="`7776000` (90 days)")] = Field(
        default=90 * 86400,
        ge=60,
        description="All refresh tokens of a grant die this long after it began, seconds.",
    )
    refresh_reuse_grace_seconds: int = Field(
        default=10,
        ge=0,
        le=120,
        description="A just-rotated refresh token presented again within this time is refused "
        "without revoking the grant (a client racing itself); later reuse revokes the grant.",
    )
    consent_ttl: Annotated[int, Option(shown_default="`2592000` (30 days)")] = Field(
        default=30 * 86400,
        ge=0,
        description="How long a user's consent is remembered, seconds.",
    )
    login_session_ttl: Annotated[int, Option(shown_default="`43200` (12 hours)")] = Field(
        default=12 * 3600,
        ge=60,
        description="How long a browser login lasts, seconds.",
    )
    leeway_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="Clock leeway for JWT time claims, seconds.",
    )
    password_login: bool = Field(
        default=True,
        description="Offer the username and password form on the sign-in page; `false` leaves "
        "only the upstream identity providers (`charter idps`), and with exactly one of them "
        "`/authorize` goes straight to it.",
    )
    identity_providers_file: Annotated[str, Option(metavar="FILE", shown_default="none")] = Field(
        default="",
        description="TOML (or `.json`) file declaring upstream identity providers "
        "(`[provider.SLUG]` tables with the settings of `charter idps add`; secrets only as "
        "`client_secret_env`), applied by `charter serve` at start; see the README.",
    )

    # -- Clients, limits, housekeeping --------------------------------------------------------

    registration_open: bool = Field(
        default=True,
        description="Allow open dynamic client registration (RFC 7591).",
    )
    maintenance_interval_seconds: int = Field(
        default=300,
        ge=0,
        description="Seconds between background housekeeping runs of `charter serve` (batched "
        "purge of expired codes, tokens, consents and sessions; reaping of never-used dynamic "
        "clients); `0` turns it off.",
    )
    unused_client_ttl: int = Field(
        default=86400,
        ge=60,
        description="Dynamically registered clients never used are deleted after this many "
        "seconds.",
    )
    registration_rate_per_minute: int = Field(
        default=30,
        ge=1,
        description="Registrations allowed per client IP per minute.",
    )
    authorize_rate_per_minute: int = Field(
        default=60,
        ge=1,
        description="New sign-in requests (pending authorizations) allowed per client IP (IPv6: "
        "per /64) per minute; more get a 429 page.",
    )
    anonymous_rate_per_minute: int = Field(
        default=120,
        ge=0,
        description="Requests without a token allowed per client IP (IPv6: per /64) per minute "
        "and worker on an MCP server offering public tools; more get 429 (`0`: none).",
    )
    legacy_sse: bool = Field(
        default=True,
        description="Also serve the MCP 2024-11-05 HTTP+SSE transport beside each MCP path "
        "(`/mcp`: `GET /sse`, `POST /messages`) for clients that speak nothing newer.",
    )
    failed_auth_limit: int = Field(
        default=10,
        ge=1,
        description="Failed logins or client secrets per account/client per 5 minutes before "
        "throttling (logins count per username and per username+IP, and a client IP may fail "
        "5 times as often; past the per-username limit the right password still signs in from "
        "an IP that is not throttled).",
    )
    client_id_metadata_documents: bool = Field(
        default=True,
        description="Accept client ID metadata documents (an https URL as `client_id`).",
    )
    ssrf_allowed_hosts: Annotated[
        StrList, Option(flag="--ssrf-allow-host", metavar="HOST[:PORT]")
    ] = Field(
        default=(),
        description="`host` or `host:port` entries, comma-separated or a JSON list, that the "
        "SSRF guard lets through although private or loopback (serve: `--ssrf-allow-host`).",
    )
    ssrf_allow_http: bool = Field(
        default=False,
        description="Allow plain-http metadata document URLs for those hosts (tests only).",
    )
    metadata_fetches_per_ip_per_minute: int = Field(
        default=10,
        ge=1,
        description="Client ID metadata document fetches one client IP (IPv6: per /64) may "
        "cause per minute and worker; more get 429 before anything is fetched.",
    )
    metadata_fetch_concurrency: int = Field(
        default=8,
        ge=1,
        description="Metadata document fetches in flight at once per worker; a fetch waits "
        "at most 0.25 s for a slot, then the client is treated as unknown.",
    )
    metadata_fetch_failure_ttl: int = Field(
        default=60,
        ge=0,
        description="Seconds a failed metadata document URL (and the host of a fetch that "
        "timed out or could not connect) is not fetched again; `0` remembers none.",
    )
    audit_retention_seconds: Annotated[int, Option(shown_default="`31536000` (365 days)")] = Field(
        default=365 * 86400,
        ge=0,
        description="Audit events older than this are deleted by housekeeping, seconds; `0` "
        "keeps them forever.",
    )
    audit_log_file: Annotated[str, Option(metavar="PATH")] = Field(
        default="",
        description="Also append every audit event, once committed, to this file as one JSON "
        "object per line (for log shippers); empty for none.",
    )
    key_publish_ahead_seconds: int = Field(
        default=120,
        ge=0,
        description="How long a new signing key is published before it signs, seconds; longer "
        "than every JWKS cache so no worker signs with a key its peers have not seen.",
    )

    # -- Operations ---------------------------------------------------------------------------

    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at `/metrics` (loopback peers only, unless "
        "`metrics_token` is set).",
    )
    metrics_token: Annotated[SecretStr | None, Option(command_line=False)] = Field(
        default=None,
        description="Bearer token that lets any peer read `/metrics` (environment only); "
        "without it only loopback peers may.",
    )

    # -- The MCP server -----------------------------------------------------------------------

    tools: Annotated[StrList, Option(metavar="MODULE")] = Field(
        default=(),
        description="Modules of extra tools, prompts and resources, separated by spaces or "
        "commas, or a JSON list (`serve --tools`).",
    )
    log_format: LogFormat = Field(
        default="text", description="`text` or `json` (one object per line)."
    )
    resource_name: str = Field(
        default="Charter MCP server",
        description="Display name in the protected resource metadata.",
    )
    mcp_servers_file: Annotated[str, Option(metavar="FILE", shown_default="none")] = Field(
        default="",
        description="TOML file declaring more MCP servers besides the default one (`[[server]]` "
        "tables: `name`, `path`, `tools`, `scopes`); see the README.",
    )
    client_answer_timeout: float = Field(
        default=300.0,
        ge=1,
        description="Seconds a tool waits for the client to answer its sampling or elicitation "
        "request (a person filling in an elicitation form may need longer); then the tool gets "
        "an error.",
    )

    # -- Behind an existing authorization server (resource-server-only mode) -------------------

    authorization_server: Annotated[str, Option(metavar="URL")] = Field(
        default="",
        description="Issuer of an existing authorization server (RFC 8414). When set, Charter "
        "serves only the protected MCP server: its metadata names this issuer, tokens are "
        "checked with the issuer's JWKS or by introspection, and no sign-in pages, client "
        "registration or token endpoints (nor their tables) exist.",
    )
    introspection_client_id: str = Field(
        default="",
        description="Client id Charter authenticates with at the authorization server's RFC 7662 "
        "introspection endpoint; set it (and the secret) to accept opaque access tokens.",
    )
    introspection_client_secret: Annotated[SecretStr | None, Option(command_line=False)] = Field(
        default=None,
        description="Secret of `introspection_client_id` (HTTP Basic, RFC 7662 §2.1).",
    )
    introspection_cache_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="An introspection answer is reused this long at most (never past the "
        "token's `exp`); `0` asks at every request.",
    )
    external_token_algorithms: Annotated[StrList, Option(metavar="ALG")] = Field(
        default=("ES256", "ES384", "RS256", "PS256", "EdDSA"),
        description="JWS algorithms accepted on the external authorization server's JWT access "
        "tokens (asymmetric only).",
    )

    # -- charter serve ------------------------------------------------------------------------

    host: str = Field(default="127.0.0.1", description="Where `charter serve` listens.")
    port: int = Field(
        default=8000, ge=1, le=65535, description="TCP port `charter serve` listens on."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of `charter serve` (more than one needs PostgreSQL).",
    )
    log_level: LogLevel = Field(
        default="info", description="Lowest level logged by `charter serve`."
    )
    graceful_timeout: float = Field(
        default=10.0,
        ge=0,
        description="Seconds running requests get to finish on SIGTERM (or SIGINT); a completed "
        "drain exits 0.",
    )
    forwarded_allow_ips: Annotated[str, Option(metavar="IPS")] = Field(
        default=DEFAULT_TRUSTED_PROXIES,
        description="Proxies (IP addresses or networks, comma-separated; empty for none) whose "
        "`X-Forwarded-For` gives the client address that per-IP limits count (`serve "
        "--forwarded-allow-ips`); from any other peer the header is ignored. `*` trusts every "
        "peer and takes the header's first address: use it only behind a proxy that replaces "
        "the header rather than appending to it.",
    )

    @field_validator(
        "scopes_supported",
        "ssrf_allowed_hosts",
        "tools",
        "external_token_algorithms",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_list_setting(value)

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str) -> str:
        if not value:
            return value
        if value.endswith("/") and value.count("/") == 3:
            value = value[:-1]  # ``https://host/`` names the origin ``https://host`` (RFC 8414 §2)
        return check_issuer(value)

    _servers: tuple[McpServerConfig, ...] = PrivateAttr(default=())
    _default_scopes: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("authorization_server")
    @classmethod
    def _authorization_server_shape(cls, value: str) -> str:
        return check_issuer(value) if value else value

    @field_validator("key_encryption_key")
    @classmethod
    def _key_encryption_key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value()) < 16:
            raise ValueError(
                "key_encryption_key must be at least 16 characters; generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _trusted_proxies_parse(cls, value: str) -> str:
        parse_trusted_proxies(value)
        return value

    @model_validator(mode="after")
    def _defaults(self) -> CharterSettings:
        if not self.issuer:
            self.issuer = default_issuer(self.host, self.port)
        if not self.resource_url:
            self.resource_url = self.issuer.rstrip("/") + "/mcp"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'charter.db'}"
        self._load_servers()
        if self.default_scope:
            unknown = set(self.default_scope.split()) - set(self.scopes_supported)
            if unknown:
                raise ValueError(f"default_scope has unknown scopes: {sorted(unknown)}")
        return self

    def _load_servers(self) -> None:
        """Read the servers file; every server's scopes join ``scopes_supported``."""
        self._servers = ()
        self._default_scopes = self.scopes_supported
        if not self.mcp_servers_file:
            return
        default_path = urlsplit(self.resource_url).path
        self._servers = load_servers(
            Path(self.mcp_servers_file), base_scope=BASE_SCOPE, taken={default_path}
        )
        extra = [scope for server in self._servers for scope in server.scopes]
        self.scopes_supported = tuple(dict.fromkeys([*self.scopes_supported, *extra]))

    @property
    def mcp_servers(self) -> tuple[McpServerConfig, ...]:
        """The MCP servers of the servers file (the default one is not among them)."""
        return self._servers

    @property
    def default_server_scopes(self) -> tuple[str, ...]:
        """The default MCP server's own scopes (``scopes_supported`` before the servers')."""
        return self._default_scopes or self.scopes_supported

    def server_url(self, server: McpServerConfig) -> str:
        """The resource URL (token audience) of a declared server."""
        return self.issuer.rstrip("/") + server.path

    def resource_names(self) -> dict[str, str]:
        """Every MCP resource URL of the deployment and its server's name (default first)."""
        names = {self.resource_url: self.resource_name}
        names.update({self.server_url(server): server.name for server in self.mcp_servers})
        return names

    @model_validator(mode="after")
    def _introspection_credentials(self) -> CharterSettings:
        if self.introspection_client_id and not self.introspection_client_secret:
            raise ValueError(
                "introspection_client_id needs CHARTER_INTROSPECTION_CLIENT_SECRET (environment)"
            )
        if self.introspection_client_id and not self.authorization_server:
            raise ValueError("introspection_client_id is only used with authorization_server")
        return self

    @property
    def resource_only(self) -> bool:
        """True when an external authorization server issues the tokens (no embedded AS)."""
        return bool(self.authorization_server)

    @property
    def issuer_origin(self) -> str:
        """Scheme and authority of the issuer."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def issuer_path(self) -> str:
        """Path component of the issuer ('' for an origin issuer)."""
        return urlsplit(self.issuer).path.rstrip("/")

    @property
    def trusted_proxies(self) -> list[str]:
        """The peers whose ``X-Forwarded-For`` counts, as uvicorn takes them."""
        return parse_trusted_proxies(self.forwarded_allow_ips)

    def endpoint_url(self, path: str) -> str:
        """Absolute URL of an endpoint served under the issuer."""
        return self.issuer.rstrip("/") + path

    def values_for(self, names: Iterable[str]) -> dict[str, Any]:
        """This model's values of the fields among ``names`` (derives another part's settings
        by field name: what a field here and a field there share is one setting)."""
        fields = type(self).model_fields
        return {name: getattr(self, name) for name in names if name in fields}

    def environment(self) -> dict[str, str]:
        """Every setting as the ``CHARTER_*`` variable that gives it to a worker process
        (lists as JSON); settings never given on a command line (secrets) are left out: a
        worker reads them from the environment it inherits."""
        exported: dict[str, str] = {}
        for name, _field in command_line_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, tuple):
                exported[env_name(name)] = json.dumps(list(value))
            elif isinstance(value, bool):
                exported[env_name(name)] = "true" if value else "false"
            else:
                exported[env_name(name)] = str(value)
        return exported


def check_issuer(value: str) -> str:
    """``value`` when it is an acceptable issuer (RFC 8414 §2), else :class:`ValueError`."""
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
