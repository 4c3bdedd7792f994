"""Settings of the protected MCP server (built once at start-up, validated, passed down)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

#: Scopes the built-in deployment knows. ``mcp`` is the base scope every MCP call needs.
DEFAULT_SCOPES: tuple[str, ...] = ("mcp", "notes:read", "notes:write")


class ResourceServerSettings(BaseModel):
    """What the resource server needs to know about itself and the issuer it trusts."""

    #: Canonical URL of the MCP endpoint, exactly as clients use it (RFC 8707 §2, RFC 9728 §2).
    resource_url: str = "http://127.0.0.1:8000/mcp"
    #: The authorization server's issuer identifier, exact (RFC 8414 §2).
    issuer: str = "http://127.0.0.1:8000"
    #: Human-readable name in the protected resource metadata.
    resource_name: str = "Charter MCP server"
    #: Scopes published in the PRM document (the minimal set a client should ask for first).
    scopes_supported: tuple[str, ...] = DEFAULT_SCOPES
    #: Scope every request to the MCP endpoint needs; sent in the 401 challenge.
    base_scope: str = "mcp"
    #: JWS algorithms accepted on access tokens (RFC 8725 §3.1).
    allowed_algorithms: tuple[str, ...] = ("ES256",)
    #: Clock leeway, seconds, for ``exp``/``nbf``/``iat``.
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    #: Browser origins allowed besides the resource's own origin and loopback (DNS rebinding guard).
    allowed_origins: tuple[str, ...] = ()
    #: Host header values allowed besides the resource's own host and loopback.
    allowed_hosts: tuple[str, ...] = ()
    #: Idle lifetime of an MCP session, seconds.
    session_ttl_seconds: int = Field(default=3600, ge=60)
    #: Minimum seconds between two JWKS refreshes caused by an unknown ``kid``.
    jwks_refresh_min_interval: float = Field(default=30.0, ge=0)
    #: Anonymous requests (no token; only with public tools) per client address, minute, worker.
    anonymous_rate_per_minute: int = Field(default=120, ge=0)
    #: Upper bound on cached verified tokens.
    token_cache_size: int = Field(default=10_000, ge=0)
    #: Also serve the 2024-11-05 HTTP+SSE transport (``/sse`` and ``/messages`` beside the MCP
    #: path, :mod:`resourceserver.mcp.legacy_sse`).
    legacy_sse: bool = True

    @field_validator("resource_url", "issuer")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        if parts.fragment:
            raise ValueError("must not contain a fragment")
        return value

    @model_validator(mode="after")
    def _base_scope_published(self) -> ResourceServerSettings:
        if self.base_scope and self.base_scope not in self.scopes_supported:
            raise ValueError(f"base_scope {self.base_scope!r} must be in scopes_supported")
        return self

    @property
    def resource_origin(self) -> str:
        """Scheme and authority of the MCP URL."""
        parts = urlsplit(self.resource_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def resource_path(self) -> str:
        """Path of the MCP endpoint (``/mcp``)."""
        return urlsplit(self.resource_url).path or "/"

    @property
    def resource_metadata_url(self) -> str:
        """Absolute URL of the path-inserted PRM document (RFC 9728 §3.1)."""
        path = self.resource_path.rstrip("/")
        return f"{self.resource_origin}/.well-known/oauth-protected-resource{path}"
