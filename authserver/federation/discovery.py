"""Discovery and key sets of upstream OpenID Providers (OpenID Connect Discovery 1.0 §4, RFC
8414 §3.3; OpenID Connect Core §10.1.1 key rotation; S81).

Every GET goes through the SSRF guard (:func:`authserver.clients.ssrf.fetch.fetch`: every
address checked, no redirects, the body capped, one time budget) with the policy of
:func:`authserver.federation.outbound.issuer_fetch_policy`: the provider's own host is let
through (the operator named it), any other host its metadata points to must be public or on
``ssrf_allowed_hosts``.

The metadata's ``issuer`` must equal the configured issuer exactly. Metadata and key sets are
cached per process; a key id the cached set lacks fetches the set again, but at most once per
:data:`REFETCH_INTERVAL` per provider (a flood of tokens with made-up ``kid`` values cannot turn
into a flood of fetches). Blocking: call from a worker thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authserver.clients.ssrf.addresses import FetchError, FetchPolicy
from authserver.clients.ssrf.fetch import FetchResult, fetch
from authserver.config.settings import CharterSettings
from authserver.federation.outbound import issuer_fetch_policy

WELL_KNOWN = "/.well-known/openid-configuration"
#: How long discovery documents and key sets are reused, seconds.
CACHE_SECONDS = 3600.0
#: Least time between two fetches of a provider's key set, seconds.
REFETCH_INTERVAL = 30.0

Fetch = Callable[[str, FetchPolicy], FetchResult]


class DiscoveryError(Exception):
    """The provider's metadata or keys cannot be used; the message says why (for the page)."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The members of an OpenID Provider's metadata the relying party uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    #: OpenID Connect Core §5.3 (optional: asked only for claims the ID token lacks).
    userinfo_endpoint: str | None
    #: RFC 9207 §3: the provider sends ``iss`` with every authorization response.
    iss_parameter_supported: bool
    token_endpoint_auth_methods: tuple[str, ...]


def metadata_url(issuer: str) -> str:
    """OpenID Connect Discovery §4: the issuer with ``/.well-known/openid-configuration``."""
    return issuer.rstrip("/") + WELL_KNOWN


def _web_url(document: dict[str, Any], name: str, allow_http: bool) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise DiscoveryError(f"the provider's metadata has no {name}")
    import httpx  # loaded by the first upstream sign-in, not by the worker's start

    scheme = httpx.URL(value).scheme
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise DiscoveryError(f"the provider's {name} is not an https URL")
    return value


def parse_metadata(document: dict[str, Any], issuer: str, policy: FetchPolicy) -> ProviderMetadata:
    """The metadata of ``issuer`` when ``document`` is its own (exact ``issuer``, §4.3)."""
    if document.get("issuer") != issuer:
        raise DiscoveryError("the provider's metadata names another issuer")
    methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_web_url(document, "authorization_endpoint", policy.allow_http),
        token_endpoint=_web_url(document, "token_endpoint", policy.allow_http),
        jwks_uri=_web_url(document, "jwks_uri", policy.allow_http),
        userinfo_endpoint=_web_url(document, "userinfo_endpoint", policy.allow_http)
        if document.get("userinfo_endpoint") is not None
        else None,
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
        is True,
        token_endpoint_auth_methods=tuple(str(method) for method in methods)
        if isinstance(methods, list)
        else (),
    )


def _json_object(result: FetchResult) -> dict[str, Any]:
    try:
        document = json.loads(result.content)
    except (UnicodeDecodeError, ValueError) as error:
        raise DiscoveryError("the provider answered something that is not JSON") from error
    if not isinstance(document, dict):
        raise DiscoveryError("the provider answered something that is not a JSON object")
    return document


@dataclass
class _Cached:
    metadata: ProviderMetadata
    fetched_at: float
    keys: KeySet | None = None
    keys_fetched_at: float = float("-inf")


class UpstreamDirectory:
    """Metadata and key sets of the upstream providers, cached for this process."""

    def __init__(
        self,
        settings: CharterSettings,
        *,
        fetcher: Fetch = fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch = fetcher
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}

    def policy(self, issuer: str) -> FetchPolicy:
        """The SSRF policy of requests to ``issuer``'s provider (its host let through)."""
        return issuer_fetch_policy(self._settings, issuer)

    def _get(self, url: str, issuer: str) -> dict[str, Any]:
        try:
            return _json_object(self._fetch(url, self.policy(issuer)))
        except FetchError as error:
            raise DiscoveryError(f"the provider could not be reached ({error})") from error

    def metadata(self, issuer: str) -> ProviderMetadata:
        """The provider's metadata (fetched when not cached or older than an hour)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(issuer)
            if cached is not None and now - cached.fetched_at < CACHE_SECONDS:
                return cached.metadata
        document = self._get(metadata_url(issuer), issuer)
        metadata = parse_metadata(document, issuer, self.policy(issuer))
        with self._lock:
            self._cache[issuer] = _Cached(metadata, now)
        return metadata

    def keys(self, issuer: str, kid: str | None) -> KeySet:
        """The provider's key set, fetched again when ``kid`` is not in it (rate limited)."""
        metadata = self.metadata(issuer)
        now = self._clock()
        with self._lock:
            cached = self._cache[issuer]
            keys = cached.keys
            fresh = now - cached.keys_fetched_at < CACHE_SECONDS
            may_refetch = now - cached.keys_fetched_at >= REFETCH_INTERVAL
        if keys is not None and fresh and (kid is None or _has_kid(keys, kid)):
            return keys
        if keys is not None and not may_refetch:
            return keys
        document = self._get(metadata.jwks_uri, issuer)
        try:
            loaded = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise DiscoveryError("the provider's key set cannot be read") from error
        with self._lock:
            cached = self._cache.get(issuer) or _Cached(metadata, now)
            cached.keys, cached.keys_fetched_at = loaded, now
            self._cache[issuer] = cached
        return loaded


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
