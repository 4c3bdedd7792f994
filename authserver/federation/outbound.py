"""Outbound HTTP to an external authorization server through the SSRF guard (S81).

:class:`GuardedFetcher` is the resource server's :class:`~resourceserver.external.issuer.Fetcher`:
discovery and JWKS GETs and introspection POSTs each run through
:class:`~authserver.clients.ssrf.network.GuardedTransport` (every address checked, no
redirects, the body capped, one time budget), in a worker thread so the event loop never blocks.

:func:`external_fetch_policy` lets the operator's configured issuer through although it may be
on loopback or a private network (the operator named it); any other host a metadata document
points to must be public or on ``ssrf_allowed_hosts``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from authserver.clients.ssrf.addresses import FetchError, FetchPolicy, check_url
from authserver.clients.ssrf.fetch import fetch
from authserver.config.settings import CharterSettings, is_loopback_host
from resourceserver.external.issuer import FetchFailedError

if TYPE_CHECKING:
    import httpx

#: Discovery documents, key sets and introspection answers are small.
MAX_BYTES = 256 * 1024
TIMEOUT_SECONDS = 5.0


def external_fetch_policy(settings: CharterSettings) -> FetchPolicy:
    """The deployment's SSRF policy plus the configured authorization server's host:port."""
    return issuer_fetch_policy(settings, settings.authorization_server)


def issuer_fetch_policy(settings: CharterSettings, issuer_url: str) -> FetchPolicy:
    """The deployment's SSRF policy plus ``issuer_url``'s host:port (an issuer the operator
    configured: the external authorization server, or an upstream OpenID Provider)."""
    import httpx  # on first use, not when a worker starts

    issuer = httpx.URL(issuer_url)
    port = issuer.port or (443 if issuer.scheme == "https" else 80)
    base = FetchPolicy.from_settings(settings, max_bytes=MAX_BYTES, timeout=TIMEOUT_SECONDS)
    return FetchPolicy(
        allowed_hosts=base.allowed_hosts | {f"{issuer.host}:{port}".lower()},
        allow_http=base.allow_http or is_loopback_host(issuer.host),
        max_bytes=MAX_BYTES,
        timeout=TIMEOUT_SECONDS,
    )


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError) as error:
        raise FetchFailedError("the answer is not JSON") from error
    if not isinstance(document, dict):
        raise FetchFailedError("the answer is not a JSON object")
    return document


class GuardedFetcher:
    """GET and POST of JSON through the SSRF guard, off the event loop."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    async def get_json(self, url: str) -> dict[str, Any]:
        try:
            result = await anyio.to_thread.run_sync(fetch, url, self.policy)
        except FetchError as error:
            raise FetchFailedError(f"GET {url}: {error}") from error
        return _json_object(result.content)

    async def post_form(
        self, url: str, form: Mapping[str, str], basic_auth: tuple[str, str]
    ) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self._post, url, dict(form), basic_auth)

    def _post(self, url: str, form: dict[str, str], basic_auth: tuple[str, str]) -> dict[str, Any]:
        import httpcore
        import httpx

        from authserver.clients.ssrf.network import GuardedTransport

        try:
            parsed = check_url(url, self.policy)
            deadline = time.monotonic() + self.policy.timeout
            with (
                httpx.Client(
                    transport=GuardedTransport(self.policy),
                    follow_redirects=False,
                    trust_env=False,
                    timeout=httpx.Timeout(self.policy.timeout),
                ) as client,
                client.stream(
                    "POST",
                    parsed,
                    data=form,
                    auth=httpx.BasicAuth(*basic_auth),
                    headers={"Accept": "application/json", "User-Agent": "charter-resource"},
                ) as response,
            ):
                if response.status_code != 200:
                    raise FetchFailedError(f"POST {url} answered {response.status_code}")
                return _json_object(self._read(response, deadline))
        except FetchError as error:
            raise FetchFailedError(f"POST {url}: {error}") from error
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise FetchFailedError(f"POST {url}: {type(error).__name__}") from error
        except httpx.HTTPError as error:
            raise FetchFailedError(f"POST {url}: {type(error).__name__}") from error
        except OSError as error:
            raise FetchFailedError(f"POST {url}: {type(error).__name__}") from error

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.policy.max_bytes:
                raise FetchFailedError("the answer is larger than allowed")
            if time.monotonic() > deadline:
                raise FetchFailedError("the request took too long")
        return bytes(body)
