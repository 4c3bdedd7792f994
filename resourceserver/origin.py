"""DNS-rebinding guard (MCP 2025-11-25 "Transports" §Security Warning; SECURITY-CASES S43).

A browser page on a foreign site can reach a server on the user's machine by rebinding its own
host name to 127.0.0.1. Such requests carry the foreign name in ``Host`` and, for scripted
requests, the foreign page in ``Origin``. :class:`OriginGuard` answers them with 403:

- ``Origin``, when present, must be the resource's own origin, a loopback origin
  (``http(s)://localhost|127.0.0.1|[::1]`` on any port) or one of ``settings.allowed_origins``;
- ``Host``, when present, must name the resource's host, a loopback host (any port) or one of
  ``settings.allowed_hosts`` (an entry without a port allows every port).

Requests without ``Origin`` (non-browser clients) pass the origin check.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from resourceserver.settings import ResourceServerSettings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

#: (scheme, host, port) of an origin, lower-cased, default port made explicit.
OriginKey = tuple[str, str, int]


def parse_origin(value: str) -> OriginKey | None:
    """``scheme://host[:port]`` as a comparable tuple, or None when it is not such an origin."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header as (lower-cased host name, port or None); None when malformed."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or parts.path:
        return None
    return host, port


#: Most Origin/Host header values whose verdict is remembered.
_VERDICTS_KEPT = 1024


class OriginPolicy:
    """Which ``Origin`` and ``Host`` values the resource server answers."""

    def __init__(self, settings: ResourceServerSettings) -> None:
        own = parse_origin(settings.resource_origin)
        self._origins = {origin for origin in map(parse_origin, settings.allowed_origins) if origin}
        if own is not None:
            self._origins.add(own)
        self._hosts: set[tuple[str, int | None]] = {(host, None) for host in LOOPBACK_HOSTS}
        if own is not None:
            self._hosts.add((own[1], None))
        for entry in settings.allowed_hosts:
            host = split_host(entry)
            if host is not None:
                self._hosts.add(host)

        #: Verdicts on header values seen (nearly every request repeats the last one); bounded,
        #: as the values are the client's.
        self._verdicts: dict[tuple[bool, str], bool] = {}

    def origin_allowed(self, value: str) -> bool:
        verdict = self._verdicts.get((True, value))
        if verdict is None:
            origin = parse_origin(value)
            verdict = origin is not None and (
                origin in self._origins or origin[1] in LOOPBACK_HOSTS
            )
            self._remember((True, value), verdict)
        return verdict

    def host_allowed(self, value: str) -> bool:
        verdict = self._verdicts.get((False, value))
        if verdict is None:
            host = split_host(value)
            verdict = host is not None and (host in self._hosts or (host[0], None) in self._hosts)
            self._remember((False, value), verdict)
        return verdict

    def problem(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """Why a request with these headers is refused, or None when it may go on."""
        # One pass over the raw headers (ASGI servers give the names lower-cased).
        origins: list[bytes] = []
        hosts: list[bytes] = []
        for name, value in raw_headers:
            if name == b"origin":
                origins.append(value)
            elif name == b"host":
                hosts.append(value)
        if len(origins) > 1 or (origins and not self.origin_allowed(origins[0].decode("latin-1"))):
            return "requests from this origin are not allowed"
        if len(hosts) > 1 or (hosts and not self.host_allowed(hosts[0].decode("latin-1"))):
            return "requests for this host are not allowed"
        return None

    def _remember(self, key: tuple[bool, str], verdict: bool) -> None:
        if len(self._verdicts) >= _VERDICTS_KEPT:
            self._verdicts.clear()
        self._verdicts[key] = verdict


class OriginGuard:
    """ASGI middleware answering 403 to requests from a foreign ``Origin`` or ``Host``."""

    def __init__(self, app: ASGIApp, settings: ResourceServerSettings) -> None:
        self.app = app
        self.policy = OriginPolicy(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.policy.problem(scope["headers"])
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = {"error": "forbidden", "error_description": problem}
            await JSONResponse(body, status_code=403)(scope, receive, send)
