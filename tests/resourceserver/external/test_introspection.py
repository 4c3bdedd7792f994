"""RFC 7662 introspection in resource-server-only mode: what is accepted, what is refused, how
long an answer is reused. The issuer's answers come from a scripted fetcher (the end-to-end
tests run the same verifier against node-oidc-provider); time is tests/support/clock.Clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from resourceserver.errors import InvalidTokenError
from resourceserver.external.introspection import IntrospectionVerifier
from resourceserver.external.issuer import ExternalIssuer, FetchFailedError, metadata_urls
from resourceserver.jwks import KeySourceError
from resourceserver.settings import ResourceServerSettings
from tests.support.clock import FIXED_NOW, Clock

ISSUER = "https://idp.example.test"
RESOURCE = "https://mcp.example.test/mcp"
ENDPOINT = ISSUER + "/token/introspection"


@dataclass
class ScriptedIssuer:
    """Answers discovery, and introspection with ``answer`` (or fails when it is None)."""

    answer: dict[str, Any] | None
    metadata: dict[str, Any] = field(
        default_factory=lambda: {"issuer": ISSUER, "introspection_endpoint": ENDPOINT}
    )
    posts: list[tuple[str, dict[str, str], tuple[str, str]]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)

    async def get_json(self, url: str) -> dict[str, Any]:
        self.gets.append(url)
        if url.endswith("/.well-known/oauth-authorization-server"):
            raise FetchFailedError("404")
        return self.metadata

    async def post_form(
        self, url: str, form: Mapping[str, str], basic_auth: tuple[str, str]
    ) -> dict[str, Any]:
        self.posts.append((url, dict(form), basic_auth))
        if self.answer is None:
            raise FetchFailedError("connection refused")
        return self.answer


def active(**claims: Any) -> dict[str, Any]:
    return {
        "active": True,
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "alice",
        "client_id": "app",
        "scope": "mcp notes:read",
        "exp": int(FIXED_NOW) + 600,
        "token_type": "Bearer",
        **claims,
    }


def verifier(
    fetcher: ScriptedIssuer, clock: Clock, cache_seconds: float = 60
) -> IntrospectionVerifier:
    settings = ResourceServerSettings(resource_url=RESOURCE, issuer=ISSUER)
    issuer = ExternalIssuer(ISSUER, fetcher, clock=clock)
    return IntrospectionVerifier(
        settings, issuer, ("charter", "secret"), cache_seconds=cache_seconds, clock=clock
    )


async def test_an_active_token_for_this_resource_is_the_caller_it_names() -> None:
    fetcher = ScriptedIssuer(active())
    principal = await verifier(fetcher, Clock()).verify("opaque-token")
    assert (principal.subject, principal.client_id) == ("alice", "app")
    assert principal.scopes == {"mcp", "notes:read"}
    assert fetcher.posts == [
        (
            ENDPOINT,
            {"token": "opaque-token", "token_type_hint": "access_token"},
            ("charter", "secret"),
        )
    ]
    assert fetcher.gets == metadata_urls(ISSUER)  # RFC 8414 first, then OpenID Connect


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        active(aud="https://other.example.test/mcp"),
        active(aud=["https://other.example.test/mcp"]),
        active(aud=None),
        active(iss="https://evil.example.test"),
        active(exp=int(FIXED_NOW) - 3600),
        active(token_type="refresh_token"),
        active(sub=None),
    ],
    ids=[
        "inactive",
        "other-aud",
        "other-aud-list",
        "no-aud",
        "foreign-iss",
        "expired",
        "refresh",
        "no-sub",
    ],
)
async def test_s80_inactive_foreign_or_other_audience_answers_are_refused(
    answer: dict[str, Any],
) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier(ScriptedIssuer(answer), Clock()).verify("opaque-token")


async def test_s80_an_answer_is_reused_no_longer_than_the_configured_bound() -> None:
    clock, fetcher = Clock(), ScriptedIssuer(active())
    check = verifier(fetcher, clock, cache_seconds=60)
    await check.verify("t")
    clock.advance(59)
    await check.verify("t")
    assert len(fetcher.posts) == 1
    clock.advance(2)
    fetcher.answer = {"active": False}  # revoked at the issuer meanwhile
    with pytest.raises(InvalidTokenError):
        await check.verify("t")
    assert len(fetcher.posts) == 2


async def test_s80_an_answer_is_reused_no_longer_than_the_token_lives() -> None:
    clock = Clock()
    fetcher = ScriptedIssuer(active(exp=int(FIXED_NOW) + 10))
    check = verifier(fetcher, clock, cache_seconds=3600)
    await check.verify("t")
    clock.advance(11)
    fetcher.answer = {"active": False}
    with pytest.raises(InvalidTokenError):
        await check.verify("t")
    assert len(fetcher.posts) == 2


async def test_s80_refusals_are_not_cached_and_a_bound_of_zero_asks_every_time() -> None:
    fetcher = ScriptedIssuer({"active": False})
    check = verifier(fetcher, Clock(), cache_seconds=0)
    with pytest.raises(InvalidTokenError):
        await check.verify("t")
    fetcher.answer = active()
    await check.verify("t")
    await check.verify("t")
    assert len(fetcher.posts) == 3


async def test_an_unreachable_introspection_endpoint_is_unavailable_not_a_refusal() -> None:
    with pytest.raises(KeySourceError):
        await verifier(ScriptedIssuer(None), Clock()).verify("t")


async def test_s80_metadata_naming_another_issuer_is_not_used() -> None:
    fetcher = ScriptedIssuer(active(), metadata={"issuer": "https://evil.example.test"})
    with pytest.raises(KeySourceError, match="another issuer"):
        await verifier(fetcher, Clock()).verify("t")
    assert fetcher.posts == []
