"""Where the resource server gets the issuer's public keys (RFC 7517 §5, RFC 8414 ``jwks_uri``).

A :class:`KeySource` hands the token verifier the issuer's current JWK Set. Three sources:

- :class:`StaticKeySource`: a fixed set (tests, pinned keys).
- :class:`CallbackKeySource`: an async callable returning the JWKS document; the composition root
  passes the embedded authorization server's key view, so no HTTP is involved.
- :class:`RemoteJwksSource`: GET of an operator-configured ``jwks_uri`` with httpx: no redirects,
  a timeout, a size cap.

Both loading sources cache the set for ``cache_ttl`` seconds, load it once under a lock when many
requests miss together, and keep serving the last good set when a reload fails (so a database or
network outage does not stop validation of tokens signed by known keys). Whether a forced reload is
allowed at all (unknown ``kid``) is the verifier's decision, not the source's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from joserfc.jwk import JWKRegistry, Key, KeySet

from resourceserver.errors import McpError
from resourceserver.metrics import JWKS_REFRESHES

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

#: Key types that may verify an access token; symmetric (``oct``) keys never do.
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class KeySourceError(McpError):
    """No key set could be obtained at all (never loaded and the load failed)."""


class KeySource(Protocol):
    """Provides the issuer's public keys."""

    async def get_jwks(self, force: bool = False) -> KeySet:
        """Return the current key set; ``force`` bypasses the cache (one reload)."""
        ...


def keyset_from_jwks(document: Mapping[str, Any]) -> KeySet:
    """Import the public, signature-capable keys of a JWKS document; skip every other member.

    Keys that fail to import, symmetric keys and keys whose ``use`` is not ``sig`` are left out
    (RFC 7517 §5: members that are not understood are ignored). Private parameters are dropped.
    """
    members = document.get("keys")
    if not isinstance(members, list):
        raise KeySourceError("JWKS document has no 'keys' array")
    keys: list[Key] = []
    for member in members:
        key = _import_public_key(member)
        if key is not None:
            keys.append(key)
    return KeySet(keys)


def _import_public_key(member: object) -> Key | None:
    if not isinstance(member, dict):
        return None
    if member.get("kty") not in _ASYMMETRIC_KEY_TYPES or member.get("use", "sig") != "sig":
        return None
    try:
        key = JWKRegistry.import_key(dict(member))
        public = JWKRegistry.import_key(key.as_dict(private=False))
    except Exception as error:  # untrusted input: any import failure skips the key
        logger.warning("skipping a JWKS member that does not import: %s", error)
        return None
    return public


class StaticKeySource:
    """A fixed key set; ``force`` changes nothing."""

    def __init__(self, jwks: KeySet | Mapping[str, Any]) -> None:
        self._keys = jwks if isinstance(jwks, KeySet) else keyset_from_jwks(jwks)

    async def get_jwks(self, force: bool = False) -> KeySet:
        return self._keys


class _CachingKeySource:
    """Shared cache for the loading sources: TTL, single-flight reloads, stale on failure."""

    def __init__(self, *, cache_ttl: float, clock: Callable[[], float]) -> None:
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._keys: KeySet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def _load(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def _fresh_keys(self) -> KeySet | None:
        if self._keys is not None and self._clock() - self._loaded_at < self._cache_ttl:
            return self._keys
        return None

    async def get_jwks(self, force: bool = False) -> KeySet:
        fresh = None if force else self._fresh_keys()
        if fresh is not None:
            return fresh
        requested_at = self._clock()
        async with self._lock:
            # Another caller may have loaded while this one waited for the lock.
            if self._keys is not None and self._loaded_at > requested_at:
                return self._keys
            fresh = None if force else self._fresh_keys()
            if fresh is not None:
                return fresh
            try:
                keys = keyset_from_jwks(await self._load())
            except Exception as error:
                JWKS_REFRESHES.labels("failed").inc()
                if self._keys is None:
                    raise KeySourceError(f"could not load the JWKS: {error}") from error
                logger.warning("JWKS reload failed, keeping the previous key set: %s", error)
                return self._keys
            JWKS_REFRESHES.labels("ok").inc()
            self._keys = keys
            self._loaded_at = self._clock()
            return keys


class CallbackKeySource(_CachingKeySource):
    """Keys from an async callable returning a JWKS document (the embedded issuer's key view)."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Mapping[str, Any]]],
        *,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        self._fetch = fetch

    async def _load(self) -> Mapping[str, Any]:
        return await self._fetch()


class RemoteJwksSource(_CachingKeySource):
    """Keys from an operator-configured ``jwks_uri``.

    The URL comes from configuration, never from a token header (``jku``/``x5u`` are ignored by
    the verifier). Redirects are refused, the body is capped at ``max_bytes`` and the whole
    request at ``timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        cache_ttl: float = 300.0,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        self._url = url
        self._owns_client = client is None
        if client is None:
            import httpx  # only a remote JWKS needs it; the embedded deployment never loads it

            client = httpx.AsyncClient()
        self._client = client
        self._timeout = timeout
        self._max_bytes = max_bytes

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _load(self) -> Mapping[str, Any]:
        async with asyncio.timeout(self._timeout):
            body = await self._get()
        document = json.loads(body)
        if not isinstance(document, dict):
            raise KeySourceError("JWKS document is not a JSON object")
        return document

    async def _get(self) -> bytes:
        headers = {"Accept": "application/jwk-set+json, application/json"}
        async with self._client.stream(
            "GET", self._url, headers=headers, follow_redirects=False, timeout=self._timeout
        ) as response:
            if response.status_code != 200:
                raise KeySourceError(f"GET {self._url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > self._max_bytes:
                    raise KeySourceError(f"JWKS larger than {self._max_bytes} bytes")
            return bytes(body)
