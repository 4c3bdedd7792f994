"""SQL statements per grant at the token endpoint (RFC 6749 §4.1.3, §4.4, §6), pinned.

Every statement of a grant is CPU on the one worker that serves it (issue 10: ≥ 1,000 refresh
grants/s). These counts are what one grant runs today, after the client was last used within
the minute (so without the ``last_used_at`` write, S48); a change adding a statement fails
here and must say why. Counts only, nothing timed. On PostgreSQL, where each statement is a
round trip, the refresh and code grants run three: the first reads the client and the
credential and takes the S95 advisory locks (:mod:`authserver.storage.grant_prelude`), the
second reads the client's and user's state again under them and does all the writes
(:mod:`authserver.storage.refresh_rotation`, :mod:`authserver.storage.code_redemption`).
SQLite runs them one by one (no data-modifying ``WITH``), with no locks of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from authserver.context import AuthServer
from authserver.oauth.adapter import token_response
from authserver.oauth.tokens import decode_access_token
from bench.grant_cpu import counting_statements
from tests.support.clock import Clock
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user

EXPECTED = {
    ("sqlite", "refresh_token"): [
        "BEGIN",
        "SELECT",  # client and refresh token (authserver/storage/grant_prelude.py)
        "SELECT",  # grant with the user's state
        "UPDATE",  # rotation
        "INSERT",  # access token record
        "INSERT",  # new refresh token
    ],
    ("postgresql", "refresh_token"): [
        "BEGIN",
        "SELECT",  # client and refresh token, client's then user's advisory lock
        # client's state, grant FOR NO KEY UPDATE with the user's state, rotation, access
        # token record and new refresh token: one statement (storage/refresh_rotation.py)
        "WITH",
    ],
    ("sqlite", "authorization_code"): [
        "BEGIN",
        "SELECT",  # client and code (authserver/storage/grant_prelude.py)
        "SELECT",  # user's state
        "UPDATE",  # consumption
        "INSERT",  # grant
        "INSERT",  # access token record
        "INSERT",  # refresh token
        "INSERT",  # audit event grant_created
    ],
    ("postgresql", "authorization_code"): [
        "BEGIN",
        "SELECT",  # client and code, client's then user's advisory lock
        # client's and user's state under the locks, consumption, grant, access token
        # record, refresh token and audit event: one statement (storage/code_redemption.py)
        "WITH",
    ],
    ("sqlite", "client_credentials"): [
        "BEGIN",
        "SELECT",  # client
        "SELECT",  # no user of that name (S22)
        "INSERT",  # grant
        "INSERT",  # access token record
    ],
    ("postgresql", "client_credentials"): [
        "BEGIN",
        "SELECT",  # client
        "SELECT",  # no user of that name (S22)
        "SELECT",  # client's advisory lock
        "SELECT",  # client's state
        "INSERT",
        "INSERT",
    ],
}


def _grant(server: AuthServer, form: dict[str, str]) -> dict[str, str]:
    status, body = token_response(server, form, [], {}, ip="127.0.0.1")
    assert status == 200, body
    return body


def _statements(server: AuthServer, form: dict[str, str]) -> list[str]:
    with counting_statements(server.database.engine) as seen:
        _grant(server, form)
    return list(seen)


def test_refresh_grant_runs_the_pinned_statements(make_server: Callable[..., AuthServer]) -> None:
    server = make_server(clock=Clock())
    client, _ = create_client(server, scope="mcp")
    user = create_user(server)
    code = create_code(server, client_id=client.client_id, subject=user.id)
    first = _grant(server, code_form(code))
    second = _grant(server, refresh_form(first["refresh_token"], client.client_id))
    with counting_statements(server.database.engine) as seen:
        third = _grant(server, refresh_form(second["refresh_token"], client.client_id))
    dialect = server.database.engine.dialect.name
    assert seen == EXPECTED[(dialect, "refresh_token")]
    # The user's names still reach the token, read in the grant's statement.
    claims = decode_access_token(server, third["access_token"])
    assert claims is not None
    assert claims["sub"] == user.id
    assert claims["preferred_username"] == user.username


def test_authorization_code_grant_runs_the_pinned_statements(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock())
    client, _ = create_client(server, scope="mcp")
    user = create_user(server)
    first, second = (create_code(server, client_id=client.client_id, subject=user.id) for _ in "12")
    _grant(server, code_form(first))
    seen = _statements(server, code_form(second))
    dialect = server.database.engine.dialect.name
    assert seen == EXPECTED[(dialect, "authorization_code")]


def test_client_credentials_grant_runs_the_pinned_statements(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock())
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        scope="mcp",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "scope": "mcp",
    }
    _grant(server, form)
    seen = _statements(server, form)
    dialect = server.database.engine.dialect.name
    assert seen == EXPECTED[(dialect, "client_credentials")]
