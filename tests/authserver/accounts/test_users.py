"""User names compare ignoring case, width and surrounding whitespace: one user per folded name,
enforced by the database, also for logins over a real socket and racing inserts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.accounts.users import (
    InvalidUsernameError,
    check_username,
    names_a_user,
    new_user,
    username_key,
)
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.crypto import hash_token
from authserver.storage.models import AuthorizationCode, User
from tests.support.browser_flow import (
    authorize_params,
    authorize_with_login,
    parse_forms,
    pkce_pair,
)
from tests.support.clock import Clock
from tests.support.factories import create_client, create_user
from tests.support.live import free_port, serve_app

PASSWORD = "correct horse battery"
FULL_WIDTH_ADMIN = "\uff21\uff44\uff4d\uff49\uff4e"  # "Admin" in full-width letters


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("Admin", "admin"),
        ("ADMIN", "admin"),
        ("  admin\t", "admin"),
        (FULL_WIDTH_ADMIN, "admin"),
        ("Stra\u00dfe", "strasse"),  # sharp s folds to "ss"
        ("\ufb01le", "file"),  # the "fi" ligature
        ("\u212bngstr\u00f6m", "\u00e5ngstr\u00f6m"),  # Angstrom sign, composed o-umlaut
        ("A\u030angstro\u0308m", "\u00e5ngstr\u00f6m"),  # combining ring and umlaut
    ],
)
def test_username_key_folds_case_width_and_whitespace(typed: str, key: str) -> None:
    assert username_key(typed) == key


def test_look_alikes_from_other_scripts_stay_distinct() -> None:
    assert username_key("\u0430dmin") != username_key("admin")  # Cyrillic a


@pytest.mark.parametrize("bad", ["", "   ", "two words", "tab\there", "zero\u200bwidth", "x" * 129])
def test_unusable_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidUsernameError):
        check_username(bad)


def test_names_are_trimmed_and_kept_as_typed(auth_server: AuthServer) -> None:
    user = create_user(auth_server, "  Alice ")
    with auth_server.database.transaction() as session:
        row = session.get(User, user.id)
        assert row is not None
        assert (row.username, row.username_key) == ("Alice", "alice")


async def test_login_ignores_case_and_width_over_real_socket(
    make_server: Callable[..., AuthServer],
) -> None:
    port = free_port()
    server = make_server(issuer=f"http://127.0.0.1:{port}")
    user = create_user(server, "Alice")
    client, _ = create_client(server, redirect_uris=["http://127.0.0.1/callback"])
    typed_names = ["alice", "ALICE", " Alice ", "\uff41\uff4c\uff49\uff43\uff45"]
    with serve_app(create_app(server), port=port) as base_url:
        for typed in typed_names:
            async with httpx.AsyncClient(base_url=base_url) as browser:  # a new browser each
                params = authorize_params(
                    client.client_id, "http://127.0.0.1:5555/callback", pkce_pair()[1]
                )
                location = await authorize_with_login(browser, params, typed, PASSWORD)
            code = location.params["code"]
            with server.database.transaction() as session:
                row = session.get(AuthorizationCode, hash_token(code))
                assert row is not None, typed
                assert row.subject == user.id, typed


def test_duplicate_names_are_refused_by_the_database(auth_server: AuthServer) -> None:
    create_user(auth_server, "admin")
    with pytest.raises(IntegrityError):
        with auth_server.database.transaction() as session:
            session.add(new_user(auth_server, "ADMIN", PASSWORD))


def test_concurrent_inserts_of_one_name_have_one_winner(
    make_server: Callable[..., AuthServer],
) -> None:
    """Eight writers, each its own context and connection, insert variants of one name at the
    same moment: exactly one row survives, every other writer gets an IntegrityError."""
    variants = ["bob", "Bob", "BOB", " bob", "bOb", "\uff42\uff4f\uff42", "boB", "BoB"]
    servers = [make_server() for _ in variants]
    rows = [
        new_user(server, name, PASSWORD) for server, name in zip(servers, variants, strict=True)
    ]
    barrier = threading.Barrier(len(variants))
    outcomes: list[str] = []

    def insert(server: AuthServer, row: User) -> None:
        barrier.wait(timeout=60)
        try:
            with server.database.transaction() as session:
                session.add(row)
        except IntegrityError:
            outcomes.append("refused")
        else:
            outcomes.append("created")

    threads = [
        threading.Thread(target=insert, args=pair) for pair in zip(servers, rows, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["created"] + ["refused"] * (len(variants) - 1)
    with servers[0].database.transaction() as session:
        keys = session.scalars(select(User.username_key)).all()
    assert keys == ["bob"]


def test_s22_client_id_cannot_equal_a_user_name_in_another_case(auth_server: AuthServer) -> None:
    create_user(auth_server, "Alice")
    with auth_server.database.transaction() as session:
        assert names_a_user(session, "ALICE")
        assert names_a_user(session, "alice")
        assert not names_a_user(session, "alice2")


async def test_s20_case_and_width_variants_share_one_failure_budget(
    make_server: Callable[..., AuthServer],
) -> None:
    """Spelling the name differently is no way around the per-username+IP failure limit."""
    server = make_server(clock=Clock(), failed_auth_limit=3)
    create_user(server, "alice", PASSWORD)
    client, _ = create_client(server, redirect_uris=["https://app.example.com/cb"])
    transport = httpx.ASGITransport(app=create_app(server), client=("198.51.100.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as tab:
        params = authorize_params(client.client_id, "https://app.example.com/cb", pkce_pair()[1])
        page = await tab.get("/authorize", params=params)
        form = next(f for f in parse_forms(page.text) if f.attrs.get("data-form") == "login")
        action, fields = form.attrs["action"], dict(form.fields)
        statuses = []
        for typed in ("alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45", " Alice"):
            answer = await tab.post(action, data={**fields, "username": typed, "password": "no"})
            statuses.append(answer.status_code)
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize("typed", ["\u00a8", "x\u00a8", "\u00af\u00b4", "Alice\u00b4"])
def test_a_key_is_its_own_key(typed: str) -> None:
    """NFKC turns U+00A8/U+00AF/U+00B4 into a space and a combining mark; the key is stripped
    after normalizing too, so keying a key changes nothing."""
    key = username_key(typed)
    assert username_key(key) == key
    assert key == key.strip()


async def test_a_nul_in_the_typed_name_is_an_unknown_user(
    make_server: Callable[..., AuthServer],
) -> None:
    """PostgreSQL cannot compare text with a NUL: the login answers 401 like any unknown name
    (it answered 503 there), on both databases."""
    server = make_server(clock=Clock())
    create_user(server, "alice", PASSWORD)
    client, _ = create_client(server, redirect_uris=["https://app.example.com/cb"])
    transport = httpx.ASGITransport(app=create_app(server), client=("198.51.100.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as tab:
        params = authorize_params(client.client_id, "https://app.example.com/cb", pkce_pair()[1])
        page = await tab.get("/authorize", params=params)
        form = next(f for f in parse_forms(page.text) if f.attrs.get("data-form") == "login")
        action, fields = form.attrs["action"], dict(form.fields)
        answer = await tab.post(
            action, data={**fields, "username": "ali\x00ce", "password": PASSWORD}
        )
    assert answer.status_code == 401
