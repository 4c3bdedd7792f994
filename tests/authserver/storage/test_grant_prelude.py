"""The refresh grant's first statement (:mod:`authserver.storage.grant_prelude`) and the
advisory lock keys it computes in SQL (:mod:`authserver.storage.issuance_locks`, S95)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import bindparam, select, text

from authserver.context import AuthServer
from authserver.storage.crypto import hash_token
from authserver.storage.grant_prelude import read_client_and_code, read_client_and_refresh_token
from authserver.storage.issuance_locks import USER_LOCK_SPACE, lock_key, sql_lock_key
from tests.support.codes import code_form, create_code
from tests.support.factories import create_client, create_user

_HELD_SHARED = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' "
    "AND classid = :space AND objid = (:key)::oid AND pid = pg_backend_pid()"
)


def _refresh_token(server: AuthServer, client_id: str, subject: str) -> str:
    from authserver.oauth.adapter import token_response

    code = create_code(server, client_id=client_id, subject=subject)
    status, body = token_response(server, code_form(code), [], {}, ip="127.0.0.1")
    assert status == 200, body
    return str(body["refresh_token"])


def test_reads_the_client_and_the_token_in_one_statement(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    client, _ = create_client(server, scope="mcp")
    user = create_user(server)
    token = _refresh_token(server, client.client_id, user.id)
    with server.database.transaction() as session:
        prelude = read_client_and_refresh_token(session, client.client_id, hash_token(token))
        missing = read_client_and_refresh_token(session, client.client_id, hash_token("nope"))
        nobody = read_client_and_refresh_token(session, "no-such-client", hash_token(token))
    assert prelude.client is not None and prelude.client.client_id == client.client_id
    assert prelude.credential is not None
    assert prelude.credential.subject == user.id
    assert prelude.credential.client_id == client.client_id
    assert missing.client is not None and missing.credential is None and not missing.locked
    assert nobody.client is None and nobody.credential is None and not nobody.locked
    assert prelude.locked is (server.database.engine.dialect.name == "postgresql")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # advisory locks are PG's
@pytest.mark.parametrize("value", ["0f" * 16, "alice", "dcr_x-Y_z", "ünïcødé ✓", ""])
def test_sql_lock_key_is_the_python_lock_key(
    make_server: Callable[..., AuthServer], value: str
) -> None:
    server = make_server()
    with server.database.transaction() as session:
        computed = session.execute(
            select(sql_lock_key("v.value")).select_from(
                text("(SELECT CAST(:value AS text) AS value) AS v").bindparams(
                    bindparam("value", value)
                )
            )
        ).scalar_one()
    assert computed == lock_key(value)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # advisory locks are PG's
def test_postgresql_prelude_holds_the_user_s_lock(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    client, _ = create_client(server, scope="mcp")
    user = create_user(server)
    token = _refresh_token(server, client.client_id, user.id)
    with server.database.transaction() as session:
        read_client_and_refresh_token(session, client.client_id, hash_token(token))
        held = session.execute(
            _HELD_SHARED, {"space": USER_LOCK_SPACE, "key": lock_key(user.id) & 0xFFFFFFFF}
        ).scalar_one()
    assert held == 1


def test_reads_the_client_and_the_code_in_one_statement(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server()
    client, _ = create_client(server, scope="mcp")
    user = create_user(server)
    code = create_code(server, client_id=client.client_id, subject=user.id)
    postgresql = server.database.engine.dialect.name == "postgresql"
    with server.database.transaction() as session:
        prelude = read_client_and_code(session, client.client_id, hash_token(code.code))
        if postgresql:
            held = session.execute(
                _HELD_SHARED, {"space": USER_LOCK_SPACE, "key": lock_key(user.id) & 0xFFFFFFFF}
            ).scalar_one()
            assert held == 1
        unknown = read_client_and_code(session, client.client_id, hash_token("no such code"))
    assert prelude.client is not None and prelude.client.client_id == client.client_id
    assert prelude.credential is not None
    assert prelude.credential.subject == user.id
    assert prelude.credential.consumed_at is None
    assert prelude.locked is postgresql
    assert unknown.client is not None and unknown.credential is None and not unknown.locked
