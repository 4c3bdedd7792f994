"""The external authorization server's metadata (RFC 8414 §3, OpenID Connect Discovery 1.0 §4).

:class:`ExternalIssuer` finds the metadata of the configured issuer at the RFC 8414 well-known
URL (path inserted, §3.1) or else at the OpenID Connect one, requires its ``issuer`` to equal the
configured one exactly (RFC 8414 §3.3), and caches it. Every HTTP exchange goes through a
:class:`Fetcher` the composition root supplies (the SSRF guard: bounded in size and time, no
redirects); this package never opens connections of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from resourceserver.jwks import CallbackKeySource, KeySourceError

RFC8414_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"


class FetchFailedError(Exception):
    """An outbound request failed (network, status, size, time, or not a JSON object)."""


class Fetcher(Protocol):
    """Outbound HTTP for the resource server, answering JSON objects only."""

    async def get_json(self, url: str) -> dict[str, Any]:
        """GET ``url``; the JSON object of a 200 answer, else :class:`FetchFailedError`."""
        ...

    async def post_form(
        self, url: str, form: Mapping[str, str], basic_auth: tuple[str, str]
    ) -> dict[str, Any]:
        """POST a form with HTTP Basic client authentication; the JSON object of a 200."""
        ...


@dataclass(frozen=True)
class IssuerMetadata:
    """The members of the metadata the resource server uses."""

    issuer: str
    jwks_uri: str | None
    introspection_endpoint: str | None


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be: RFC 8414 §3.1 first, then OIDC Discovery §4."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return [origin + RFC8414_WELL_KNOWN + path, issuer.rstrip("/") + OIDC_WELL_KNOWN]


def _optional_url(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise KeySourceError(f"the issuer's metadata has an unusable {name}")
    return value


class ExternalIssuer:
    """The configured issuer's metadata, discovered once and refreshed after ``cache_ttl``."""

    def __init__(
        self,
        issuer: str,
        fetcher: Fetcher,
        *,
        cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.fetcher = fetcher
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._metadata: IssuerMetadata | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> IssuerMetadata:
        """The cached metadata; a failed refresh keeps the last good one (KeySourceError when
        there never was one)."""
        if self._metadata is not None and self._clock() - self._loaded_at < self._cache_ttl:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and self._clock() - self._loaded_at < self._cache_ttl:
                return self._metadata
            try:
                self._metadata = await self._discover()
            except (FetchFailedError, KeySourceError) as error:
                if self._metadata is None:
                    raise KeySourceError(f"no metadata for {self.issuer}: {error}") from error
            self._loaded_at = self._clock()
            return self._metadata

    async def _discover(self) -> IssuerMetadata:
        errors: list[str] = []
        for url in metadata_urls(self.issuer):
            try:
                document = await self.fetcher.get_json(url)
            except FetchFailedError as error:
                errors.append(f"{url}: {error}")
                continue
            if document.get("issuer") != self.issuer:
                raise KeySourceError(f"{url} names another issuer (RFC 8414 §3.3)")
            return IssuerMetadata(
                issuer=self.issuer,
                jwks_uri=_optional_url(document, "jwks_uri"),
                introspection_endpoint=_optional_url(document, "introspection_endpoint"),
            )
        raise FetchFailedError("; ".join(errors))

    def key_source(self, *, cache_ttl: float = 300.0) -> CallbackKeySource:
        """The issuer's JWKS (from its ``jwks_uri``), cached ``cache_ttl`` seconds; an unknown
        ``kid`` makes the verifier force a reload (key rotation)."""

        async def load() -> Mapping[str, Any]:
            metadata = await self.metadata()
            if metadata.jwks_uri is None:
                raise KeySourceError(f"{self.issuer} publishes no jwks_uri")
            return await self.fetcher.get_json(metadata.jwks_uri)

        return CallbackKeySource(load, cache_ttl=cache_ttl, clock=self._clock)
