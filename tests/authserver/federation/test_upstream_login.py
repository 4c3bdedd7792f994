"""Signing in to Charter through an upstream OpenID Provider (S75-S79): the happy path, and each
way a callback or an ID token can be wrong, against a small provider of the tests' own
(:mod:`tests.support.fake_op`, ID tokens signed with joserfc) served on a real socket.

Every refusal shows Charter's error page saying why and creates no user and no link.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select, text

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.oauth.tokens import decode_access_token
from authserver.storage.models import (
    AuditEvent,
    AuthorizationCode,
    Base,
    IdentityProvider,
    LoginSession,
    UpstreamLogin,
    User,
    UserLink,
)
from authserver.storage.schema import prepare_database
from tests.conftest import TEST_ISSUER, TEST_KEY_SECRET
from tests.support.factories import create_user
from tests.support.fake_op import CLIENT_SECRET, DROP, FakeOp, run_fake_op
from tests.support.upstream import UpstreamBrowser, add_provider, counts, mcp_client


@pytest.fixture
def op() -> Iterator[FakeOp]:
    with run_fake_op() as provider:
        yield provider


@pytest.fixture
def server(make_server: Callable[..., AuthServer], op: FakeOp) -> AuthServer:
    made = make_server()
    add_provider(made, op.issuer, secret=CLIENT_SECRET)
    return made


@dataclass(frozen=True)
class Ago:
    """A time claim this many seconds before the sign-in (negative: after it)."""

    seconds: int


def assert_refused(response: httpx.Response, server: AuthServer, words: str) -> None:
    assert response.status_code in (400, 403), response.text
    assert "Signing in did not work" in response.text
    assert words in response.text, response.text
    assert counts(server) == (0, 0)


async def test_upstream_sign_in_continues_to_consent_and_the_token_names_the_user(
    server: AuthServer, op: FakeOp
) -> None:
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        page = await browser.login_page(client_id)
        assert "Sign in with <bdi>Corp SSO</bdi>" in page.text
        assert 'data-form="login"' in page.text  # passwords still offered beside it
        callback, answer = await browser.sign_in(client_id)
        assert callback.params["iss"] == op.issuer
        assert answer.status_code == 303, answer.text
        consent = await browser.get(server.settings.issuer + answer.headers["location"])
        assert "Alice Upstream (alice)" in consent.text
        redirect = await browser.approve(answer.headers["location"])
    assert "code" in redirect.params
    with server.database.transaction() as session:
        user = session.scalars(select(User)).one()
        link = session.scalars(select(UserLink)).one()
        code = session.scalars(select(AuthorizationCode)).one()
        assert (user.username, user.display_name) == ("alice", "Alice Upstream")
        assert (link.issuer, link.subject, link.user_id) == (op.issuer, op.subject, user.id)
        assert code.subject == user.id
    asked = next(iter(op.codes.values()), None)
    assert asked is None  # the code was redeemed


async def test_access_tokens_carry_the_persons_names(server: AuthServer) -> None:
    from authserver.oauth.tokens import issue_access_token

    user = create_user(server, "bob")
    with server.database.transaction() as session:
        session.get(User, user.id).display_name = "Bob Builder"  # type: ignore[union-attr]
    with server.database.transaction() as session:
        issued = issue_access_token(
            server, session, server.keys.signing_key(), grant_id=None, client_id="c",
            subject=user.id, scope="mcp", resource="http://127.0.0.1:8000/mcp", now=server.now(),
        )  # fmt: skip
    claims = decode_access_token(server, issued.token)
    assert claims is not None
    assert (claims["preferred_username"], claims["name"]) == ("bob", "Bob Builder")


async def test_s75_a_replayed_state_is_refused_and_creates_nothing_more(
    server: AuthServer,
) -> None:
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        callback, first = await browser.sign_in(client_id)
        assert first.status_code == 303
        before = counts(server)
        again = await browser.get(callback)
    assert again.status_code == 403
    assert "already used, has expired or was never started" in again.text
    assert counts(server) == before


async def test_s75_a_callback_in_another_browser_or_with_an_unknown_state_is_refused(
    server: AuthServer,
) -> None:
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as victim, UpstreamBrowser(server) as attacker:
        page = await attacker.login_page(client_id)
        callback = await attacker.to_callback(await attacker.provider_link(page))
        await victim.login_page(client_id)  # the victim has a browser cookie of its own
        foreign = await victim.get(callback)
        assert_refused(foreign, server, "started in another browser")
        unknown = await victim.get(callback.copy_set_param("state", "made-up-state-value"))
        assert_refused(unknown, server, "never started")
        missing = await victim.get(callback.copy_remove_param("state"))
        assert missing.status_code == 400
    assert counts(server) == (0, 0)


async def test_s75_state_and_nonce_are_fresh_per_sign_in_and_pkce_is_s256(
    server: AuthServer, op: FakeOp
) -> None:
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        starts = []
        for _ in range(2):
            page = await browser.login_page(client_id)
            link = await browser.provider_link(page)
            response = await browser.get(server.settings.issuer + link)
            starts.append(httpx.URL(response.headers["location"]).params)
    assert starts[0]["state"] != starts[1]["state"]
    assert starts[0]["nonce"] != starts[1]["nonce"]
    assert {start["code_challenge_method"] for start in starts} == {"S256"}
    assert starts[0]["redirect_uri"] == server.settings.issuer + "/login/idp/callback"
    assert starts[0]["scope"].split()[0] == "openid"


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "someone-else"}, "issued for another application (aud)"),
        ({"aud": ["charter-at-fake", "other"]}, "several audiences but no azp"),
        ({"aud": ["charter-at-fake", "other"], "azp": "other"}, "another application (azp)"),
        ({"nonce": "not-the-nonce-we-sent"}, "nonce does not belong to this sign-in"),
        ({"nonce": DROP}, "nonce does not belong to this sign-in"),
        ({"iss": "https://evil.example"}, "issued by another provider (iss)"),
        ({"exp": Ago(3600), "iat": Ago(3700)}, "has expired"),
        ({"iat": Ago(-3600)}, "issued in the future"),
        ({"iat": Ago(7200), "exp": Ago(-300)}, "too long ago"),
        ({"sub": DROP}, "no usable sub"),
    ],
)
async def test_s76_id_tokens_with_bad_claims_are_refused(
    server: AuthServer, op: FakeOp, claims: dict[str, object], words: str
) -> None:
    now = int(time.time())
    op.claims = {
        name: now - value.seconds if isinstance(value, Ago) else value
        for name, value in claims.items()
    }
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, words)


async def test_s76_an_id_token_for_another_audience_is_refused(
    server: AuthServer, op: FakeOp
) -> None:
    op.claims = {"aud": "another-relying-party"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "issued for another application")


async def test_s76_a_wrong_nonce_is_refused(server: AuthServer, op: FakeOp) -> None:
    op.claims = {"nonce": "a-nonce-of-another-sign-in"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "nonce does not belong")


async def test_s76_an_expired_id_token_is_refused(server: AuthServer, op: FakeOp) -> None:
    now = int(time.time())
    op.claims = {"iat": now - 400, "exp": now - 100}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "has expired")


async def test_s76_alg_none_and_hs256_with_the_public_key_are_refused(
    server: AuthServer, op: FakeOp
) -> None:
    public_pem = op.key.as_pem(private=False)
    for header, key in (
        ({"alg": "none"}, None),
        ({"alg": "HS256"}, public_pem),
    ):
        op.header, op.signing_key = header, key
        async with UpstreamBrowser(server) as browser:
            _callback, answer = await browser.sign_in(mcp_client(server))
        assert_refused(answer, server, "is not accepted")


async def test_s76_a_signature_by_a_key_outside_the_jwks_is_refused(
    server: AuthServer, op: FakeOp
) -> None:
    op.signing_key = RSAKey.generate_key(2048)
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "signature does not verify")


async def test_s76_a_rotated_key_is_fetched_again_once(server: AuthServer, op: FakeOp) -> None:
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        _callback, first = await browser.sign_in(client_id)
        assert first.status_code == 303
        fetched = op.jwks_requests
        op.key = RSAKey.generate_key(2048, auto_kid=True)  # the provider rotates its key
        from authserver.federation import discovery

        discovery.REFETCH_INTERVAL, saved = 0.0, discovery.REFETCH_INTERVAL
        browser.charter.cookies.clear()  # signed out: the same app (and its caches) again
        try:
            _callback, second = await browser.sign_in(client_id)
        finally:
            discovery.REFETCH_INTERVAL = saved
    assert second.status_code == 303, second.text
    assert op.jwks_requests == fetched + 1


async def test_s77_a_callback_with_another_providers_iss_is_refused(
    make_server: Callable[..., AuthServer],
) -> None:
    with run_fake_op() as honest, run_fake_op(client_id="charter-at-evil") as evil:
        server = make_server()
        add_provider(server, honest.issuer, secret=CLIENT_SECRET)
        add_provider(server, evil.issuer, slug="evil", client_id="charter-at-evil",
                     secret=CLIENT_SECRET, display_name="Evil IdP")  # fmt: skip
        honest.response_iss = evil.issuer  # the response claims to come from the other one
        async with UpstreamBrowser(server) as browser:
            _callback, answer = await browser.sign_in(mcp_client(server))
        assert_refused(answer, server, "came from another provider than the one you chose")
        assert honest.token_requests == 0 and evil.token_requests == 0


async def test_s77_another_providers_code_is_refused(
    make_server: Callable[..., AuthServer],
) -> None:
    with run_fake_op() as honest, run_fake_op(client_id="charter-at-evil") as evil:
        server = make_server()
        add_provider(server, honest.issuer, secret=CLIENT_SECRET)
        add_provider(server, evil.issuer, slug="evil", client_id="charter-at-evil",
                     secret=CLIENT_SECRET, display_name="Evil IdP")  # fmt: skip
        client_id = mcp_client(server)
        async with UpstreamBrowser(server) as browser:
            evil_callback = await browser.to_callback(
                await browser.provider_link(await browser.login_page(client_id), "Evil IdP")
            )
            honest_callback = await browser.to_callback(
                await browser.provider_link(await browser.login_page(client_id))
            )
            # The honest sign-in's state with the code (and iss) the evil provider issued.
            mixed = honest_callback.copy_set_param("code", evil_callback.params["code"])
            answer = await browser.get(mixed.copy_remove_param("iss"))
        assert answer.status_code == 403
        assert "does not say who sent it (iss)" in answer.text
        honest.iss_parameter_supported = False
        async with UpstreamBrowser(server) as browser:
            evil_callback = await browser.to_callback(
                await browser.provider_link(await browser.login_page(client_id), "Evil IdP")
            )
            honest_callback = await browser.to_callback(
                await browser.provider_link(await browser.login_page(client_id))
            )
            mixed = honest_callback.copy_set_param("code", evil_callback.params["code"])
            answer = await browser.get(mixed.copy_remove_param("iss"))
        assert answer.status_code == 502
        assert "refused the code (invalid_grant)" in answer.text
        assert counts(server) == (0, 0)


async def test_s77_a_missing_iss_is_refused_when_the_provider_promises_it(
    server: AuthServer, op: FakeOp
) -> None:
    op.response_iss = None
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "does not say who sent it")


async def test_s78_accounts_link_by_issuer_and_sub_never_by_email(
    server: AuthServer, op: FakeOp
) -> None:
    local = create_user(server, "alice")  # same name and (say) e-mail as the upstream account
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(client_id)
        assert answer.status_code == 303
    op.claims = {"email": "changed@example.com", "preferred_username": "someone"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(client_id)
        assert answer.status_code == 303
    op.subject, op.claims = "upstream-mallory", {"email": "alice@example.com"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(client_id)
        assert answer.status_code == 303
    with server.database.transaction() as session:
        links = {link.subject: link.user_id for link in session.scalars(select(UserLink))}
        names = {user.id: user.username for user in session.scalars(select(User))}
    assert local.id not in links.values()
    assert names[links["upstream-alice"]] == "alice-2"
    assert names[links["upstream-mallory"]] == "alice-3"
    assert len(names) == 3


async def test_s78_pre_provisioned_only_refuses_unknown_accounts(
    server: AuthServer, op: FakeOp
) -> None:
    with server.database.transaction() as session:
        session.scalars(select(IdentityProvider)).one().jit = False
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert_refused(answer, server, "ask the administrator to add you")


async def test_s79_sign_in_rules_apply_at_every_login_and_end_charter_logins(
    server: AuthServer, op: FakeOp
) -> None:
    with server.database.transaction() as session:
        session.scalars(select(IdentityProvider)).one().allowed_email_domains = ["example.com"]
    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as laptop, UpstreamBrowser(server) as phone:
        _callback, answer = await laptop.sign_in(client_id)
        assert answer.status_code == 303
        with server.database.transaction() as session:
            assert session.scalars(select(LoginSession)).all()
        op.claims = {"email": "alice@elsewhere.example"}  # moved to another domain upstream
        _callback, refused = await phone.sign_in(client_id)
        assert refused.status_code == 403 and "e-mail domain" in refused.text
        with server.database.transaction() as session:
            assert session.scalars(select(LoginSession)).all() == []
        page = await laptop.login_page(client_id)  # the laptop's Charter login is gone too
        assert 'data-form="login"' in page.text and "consent-form" not in page.text
        op.claims = {"email_verified": False}
        _callback, unverified = await phone.sign_in(client_id)
        assert unverified.status_code == 403 and "verified e-mail" in unverified.text
    with server.database.transaction() as session:
        events = [row.event for row in session.scalars(select(AuditEvent))]
    assert events.count("upstream_login_refused") == 2


async def test_s79_a_required_claim_and_the_scope_map_limit_who_grants_what(
    server: AuthServer, op: FakeOp
) -> None:
    with server.database.transaction() as session:
        row = session.scalars(select(IdentityProvider)).one()
        row.required_claims = {"department": "research"}
        row.scope_claim, row.scope_map = "groups", {"readers": "mcp notes:read"}
    client_id = mcp_client(server)
    op.claims = {"department": "sales", "groups": ["readers"]}
    async with UpstreamBrowser(server) as browser:
        _callback, refused = await browser.sign_in(client_id)
    assert_refused(refused, server, "lacks what is required (department)")
    op.claims = {"department": "research", "groups": ["readers", "other"]}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(client_id)
        assert answer.status_code == 303
        redirect = await browser.approve(answer.headers["location"])
    with server.database.transaction() as session:
        code = session.scalars(select(AuthorizationCode)).one()
    assert "code" in redirect.params
    assert code.scope == "mcp notes:read"


async def test_userinfo_completes_the_claims_only_for_the_same_sub(
    server: AuthServer, op: FakeOp
) -> None:
    op.claims = {"preferred_username": DROP, "name": DROP, "email": DROP}
    op.userinfo = {"sub": "someone-else", "preferred_username": "mallory", "name": "Mallory"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
        assert answer.status_code == 303
    op.subject = "upstream-bob"
    op.userinfo = {"sub": "upstream-bob", "preferred_username": "bob", "name": "Bob Upstream"}
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
        assert answer.status_code == 303
    with server.database.transaction() as session:
        names = {(user.username, user.display_name) for user in session.scalars(select(User))}
    assert names == {("user", None), ("bob", "Bob Upstream")}


@pytest.mark.postgres
async def test_s78_two_first_sign_ins_of_one_account_race_to_one_user(
    postgres_database_url: str, tmp_path: Path, op: FakeOp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique (issuer, sub) decides: the later first sign-in uses the winner's user.

    On PostgreSQL, where two workers' transactions run side by side (SQLite serialises writers,
    so the later sign-in there simply finds the link).
    """
    from authserver.federation import accounts, relying_party

    server = AuthServer.build(
        CharterSettings(
            issuer=TEST_ISSUER, data_dir=tmp_path / "data", database_url=postgres_database_url,
            key_encryption_key=TEST_KEY_SECRET,
        )
    )  # fmt: skip
    prepare_database(server.database.engine)
    with server.database.engine.begin() as connection:
        names = ", ".join(f'"{table.name}"' for table in reversed(Base.metadata.sorted_tables))
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
    server.keys.ensure_signing_key()
    add_provider(server, op.issuer, secret=CLIENT_SECRET)

    real_find = accounts.find_link
    raced: list[str] = []

    def find_link_losing_the_race(session: object, issuer: str, subject: str) -> object:
        if not raced:  # the other browser's sign-in commits its user just now
            with server.database.transaction() as other:
                user, _link = accounts.create_linked_user(
                    other, issuer, {"sub": subject, "preferred_username": "winner"}, 1
                )
                raced.append(user.id)
            return None
        return real_find(session, issuer, subject)  # type: ignore[arg-type]

    monkeypatch.setattr(relying_party, "find_link", find_link_losing_the_race)
    async with UpstreamBrowser(server) as browser:
        _callback, answer = await browser.sign_in(mcp_client(server))
    assert answer.status_code == 303, answer.text
    with server.database.transaction() as session:
        users = session.scalars(select(User)).all()
        sessions = session.scalars(select(LoginSession)).all()
    server.database.dispose()
    assert [user.id for user in users] == raced
    assert [login.user_id for login in sessions] == raced


async def test_expired_upstream_logins_are_purged(server: AuthServer) -> None:
    from authserver.ops.purge import purge_expired

    client_id = mcp_client(server)
    async with UpstreamBrowser(server) as browser:
        page = await browser.login_page(client_id)
        await browser.get(server.settings.issuer + await browser.provider_link(page))
    with server.database.transaction() as session:
        row = session.scalars(select(UpstreamLogin)).one()
        row.expires_at = server.now() - 1
    assert purge_expired(server)["upstream_logins"] == 1
    with server.database.transaction() as session:
        assert session.scalars(select(UpstreamLogin)).all() == []
