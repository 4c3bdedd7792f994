"""The official MCP Python SDK client wired for tests: memory token storage, a headless user
as redirect/callback handlers, and a record of every HTTP exchange (REAL-CLIENTS.md §2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.support.charter_process import CharterProcess
from tests.support.headless import HeadlessUser

REDIRECT_URI = "http://127.0.0.1:53682/callback"


@dataclass
class MemoryStorage:
    """The SDK's ``TokenStorage``, in memory."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None
    token_history: list[OAuthToken] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class ConsentDeniedError(Exception):
    """The headless user denied consent (the redirect carried ``error=access_denied``)."""


@dataclass
class Observed:
    """Every HTTP exchange the SDK made: (method, path, status, WWW-Authenticate)."""

    exchanges: list[tuple[str, str, int, str]] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        self.exchanges.append(
            (
                response.request.method,
                response.request.url.path,
                response.status_code,
                response.headers.get("www-authenticate", ""),
            )
        )

    def statuses(self, path: str) -> list[int]:
        return [status for _m, p, status, _w in self.exchanges if p == path]


def make_provider(
    charter: CharterProcess, user: HeadlessUser, storage: MemoryStorage
) -> OAuthClientProvider:
    async def redirect_handler(url: str) -> None:
        await user.authorize(url)

    async def callback_handler() -> AuthorizationCodeResult:
        assert user.last_redirect is not None
        params = user.last_redirect.params
        if "error" in params:
            raise ConsentDeniedError(params["error"])
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    metadata = OAuthClientMetadata(
        client_name="Charter SDK e2e",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server_url=charter.mcp_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


@asynccontextmanager
async def connect(
    charter: CharterProcess, provider: OAuthClientProvider, observed: Observed
) -> AsyncIterator[Client]:
    hooks: dict[str, list[Any]] = {"response": [observed.on_response]}
    async with httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http:
        transport = streamable_http_client(charter.mcp_url, http_client=http)
        async with Client(transport, cache=None) as client:
            yield client


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict), result
    return data


def scopes_of(url: str) -> set[str]:
    return set(httpx.URL(url).params.get("scope", "").split())
