"""Shared pieces of the resource-server auth tests: settings, a fake clock, counting key and
revocation sources, and a tiny Starlette app whose ``/mcp`` echoes the authenticated principal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from resourceserver.auth import BearerAuthMiddleware, challenge_response
from resourceserver.errors import InsufficientScopeError
from resourceserver.jwks import keyset_from_jwks
from resourceserver.metadata import metadata_routes
from resourceserver.origin import OriginGuard
from resourceserver.principal import Principal
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier, TokenVerifier
from tests.support.clock import Clock as FakeClock  # the one fake clock of the tests

ISSUER = "https://as.example.com"
RESOURCE_ORIGIN = "https://mcp.example.com"
RESOURCE = f"{RESOURCE_ORIGIN}/mcp"
PRM_URL = f"{RESOURCE_ORIGIN}/.well-known/oauth-protected-resource/mcp"
START = 1_800_000_000.0


def make_settings(**overrides: Any) -> ResourceServerSettings:
    values: dict[str, Any] = {"resource_url": RESOURCE, "issuer": ISSUER}
    values.update(overrides)
    return ResourceServerSettings(**values)


@dataclass
class CountingKeySource:
    """A key source over a mutable JWKS document that counts loads and forced reloads.

    ``published`` is what the issuer publishes now; ``served`` what the cache holds: it only
    catches up with ``published`` on a forced reload, like a real cache would.
    """

    published: dict[str, Any]
    calls: int = 0
    forced: int = 0
    served: KeySet = field(init=False)

    def __post_init__(self) -> None:
        self.served = keyset_from_jwks(self.published)

    async def get_jwks(self, force: bool = False) -> KeySet:
        self.calls += 1
        if force:
            self.forced += 1
            self.served = keyset_from_jwks(self.published)
        return self.served


@dataclass
class MemoryRevocations:
    revoked: set[str] = field(default_factory=set)
    calls: int = 0

    async def is_revoked(self, jti: str) -> bool:
        self.calls += 1
        return jti in self.revoked


def make_verifier(
    settings: ResourceServerSettings,
    keys: CountingKeySource,
    clock: FakeClock,
    revocation: MemoryRevocations | None = None,
) -> JwtTokenVerifier:
    return JwtTokenVerifier(settings, keys, revocation=revocation, clock=clock)


def principal_json(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
        "token_id": principal.token_id,
    }


def build_app(settings: ResourceServerSettings, verifier: TokenVerifier) -> Starlette:
    """``/mcp`` (protected; ``?need=<scope>`` demands a scope), PRM routes and ``/public``."""

    async def mcp(request: Request) -> Response:
        principal: Principal = request.state.principal
        needed = frozenset(request.query_params.getlist("need"))
        if not principal.has_scopes(needed):
            return challenge_response(settings, InsufficientScopeError(needed))
        return JSONResponse(principal_json(principal), headers={"Mcp-Session-Id": "s-1"})

    async def public(request: Request) -> Response:
        return PlainTextResponse("public")

    routes = [
        Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
        Route("/public", public),
        *metadata_routes(settings),
    ]
    middleware = [
        Middleware(OriginGuard, settings=settings),
        Middleware(BearerAuthMiddleware, settings=settings, verifier=verifier),
    ]
    return Starlette(routes=routes, middleware=middleware)


def client_for(app: Starlette, base_url: str = RESOURCE_ORIGIN) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """The auth-params of a ``WWW-Authenticate: Bearer k="v", …`` header (our quoting only)."""
    value = response.headers["www-authenticate"]
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    for item in rest.split('", '):
        name, _, quoted = item.partition("=")
        params[name.strip()] = quoted.strip('"')
    return params


def body(response: httpx.Response) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(response.content)
    return value
