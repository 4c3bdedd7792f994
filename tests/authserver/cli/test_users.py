"""``charter users``: adding (stdin or prompt), listing, password changes, removal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from sqlalchemy import select

from authserver.context import AuthServer
from authserver.storage.models import Grant, LoginSession, User
from tests.support.cli_runner import Charter
from tests.support.factories import create_client
from tests.support.rows import issue_grant, remember_consent


def load_user(server: AuthServer, username: str) -> User | None:
    with server.database.transaction() as session:
        return session.scalars(select(User).where(User.username == username)).first()


def test_add_from_stdin_then_list_as_json(cli: Charter, server: AuthServer) -> None:
    result = cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    assert result.exit_code == 0, result.output
    assert "created user bob" in result.stdout

    listed = cli("users", "list", "--json")
    assert listed.exit_code == 0
    records = json.loads(listed.stdout)
    assert [record["username"] for record in records] == ["bob"]
    assert "password_hash" not in records[0]
    user = load_user(server, "bob")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert server.passwords.verify(user.password_hash, "hunter2hunter2")


def test_list_is_an_aligned_table(cli: Charter) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    cli("users", "add", "alexandra", "--password-stdin", "--admin", input="hunter2hunter2\n")
    lines = cli("users", "list").stdout.splitlines()
    assert lines[0].split()[:3] == ["USERNAME", "ID", "ADMIN"]
    assert lines[1].startswith("alexandra  ")
    assert lines[2].startswith("bob        ")
    assert lines[1].index(" yes ") == lines[2].index(" no ")


def test_add_without_terminal_needs_password_stdin(cli: Charter, server: AuthServer) -> None:
    result = cli("users", "add", "bob")
    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr
    assert load_user(server, "bob") is None


def test_add_prompts_twice_on_a_terminal(
    cli: Charter, server: AuthServer, terminal: Callable[[], None]
) -> None:
    terminal()
    result = cli(
        "users", "add", "carol", input="first-try-1\nmistyped-2\nsecret-pass\nsecret-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    user = load_user(server, "carol")
    assert user is not None
    assert server.passwords.verify(user.password_hash, "secret-pass")


def test_short_password_is_refused(cli: Charter, server: AuthServer) -> None:
    result = cli("users", "add", "bob", "--password-stdin", input="short\n")
    assert result.exit_code == 1
    assert "at least 8" in result.stderr
    assert load_user(server, "bob") is None


def test_duplicate_user_fails(cli: Charter) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    result = cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_s22_username_cannot_equal_a_client_id(cli: Charter, server: AuthServer) -> None:
    create_client(server, client_id="shared-name")
    result = cli("users", "add", "shared-name", "--password-stdin", input="hunter2hunter2\n")
    assert result.exit_code == 1
    assert load_user(server, "shared-name") is None


def test_passwd_changes_the_hash_and_ends_logins(cli: Charter, server: AuthServer) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    user = load_user(server, "bob")
    assert user is not None
    with server.database.transaction() as session:
        session.add(LoginSession(id_hash="h", user_id=user.id, created_at=1, expires_at=2**40))
    result = cli("users", "passwd", "bob", "--password-stdin", input="a-new-password\n")
    assert result.exit_code == 0, result.output
    changed = load_user(server, "bob")
    assert changed is not None
    assert server.passwords.verify(changed.password_hash, "a-new-password")
    assert not server.passwords.verify(changed.password_hash, "hunter2hunter2")
    with server.database.transaction() as session:
        assert session.scalars(select(LoginSession)).all() == []


def test_passwd_of_unknown_user_fails(cli: Charter) -> None:
    result = cli("users", "passwd", "nobody", "--password-stdin", input="a-new-password\n")
    assert result.exit_code == 1
    assert "charter users list" in result.stderr


def test_remove_refuses_without_terminal_and_yes(cli: Charter, server: AuthServer) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    result = cli("users", "remove", "bob")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert load_user(server, "bob") is not None


def test_remove_asks_on_a_terminal(
    cli: Charter, server: AuthServer, terminal: Callable[[], None]
) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    terminal()
    declined = cli("users", "remove", "bob", input="n\n")
    assert declined.exit_code == 1
    assert load_user(server, "bob") is not None
    accepted = cli("users", "remove", "bob", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert load_user(server, "bob") is None


def test_remove_revokes_grants_and_consents(cli: Charter, server: AuthServer) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    user = load_user(server, "bob")
    assert user is not None
    client, _ = create_client(server)
    issued = issue_grant(server, client_id=client.client_id, subject=user.id)
    remember_consent(server, user_id=user.id, client_id=client.client_id)
    result = cli("users", "remove", "bob", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revoked_grants"] == 1
    with server.database.transaction() as session:
        grant = session.get(Grant, issued.grant_id)
        assert grant is not None
        assert grant.revoked_at is not None


def test_passwd_json_reports_the_user_without_secrets(cli: Charter, server: AuthServer) -> None:
    cli("users", "add", "bob", "--password-stdin", input="hunter2hunter2\n")
    result = cli("users", "passwd", "bob", "--password-stdin", "--json", input="a-new-password\n")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["username"] == "bob"
    assert record["ended_logins"] is True
    assert record["password_changed_at"] is not None
    assert "password_hash" not in record
    assert "a-new-password" not in result.stdout
    changed = load_user(server, "bob")
    assert changed is not None
    assert server.passwords.verify(changed.password_hash, "a-new-password")


def test_names_ignore_case_in_every_command(cli: Charter, server: AuthServer) -> None:
    """``Bob`` is found as ``bob``, ``BOB``…; its name is shown as typed at creation."""
    created = cli("users", "add", "Bob", "--password-stdin", input="hunter2hunter2\n")
    assert created.exit_code == 0, created.output
    for other in ("bob", "BOB", " bOb "):
        again = cli("users", "add", other, "--password-stdin", input="hunter2hunter2\n")
        assert again.exit_code == 1, other
        assert "exists" in again.stderr and "'Bob'" in again.stderr, again.stderr
    changed = cli("users", "passwd", "BOB", "--password-stdin", input="a-new-password\n")
    assert changed.exit_code == 0, changed.output
    user = load_user(server, "Bob")
    assert user is not None
    assert server.passwords.verify(user.password_hash, "a-new-password")
    listed = json.loads(cli("users", "list", "--json").stdout)
    assert [record["username"] for record in listed] == ["Bob"]
    removed = cli("users", "remove", "bOB", "--yes")
    assert removed.exit_code == 0, removed.output
    assert load_user(server, "Bob") is None


def test_name_with_spaces_inside_is_a_usage_error(cli: Charter) -> None:
    result = cli("users", "add", "two words", "--password-stdin", input="hunter2hunter2\n")
    assert result.exit_code == 2
    assert "spaces" in result.stderr


def test_tokens_and_consents_find_users_in_any_case(cli: Charter, server: AuthServer) -> None:
    cli("users", "add", "Bob", "--password-stdin", input="hunter2hunter2\n")
    user = load_user(server, "Bob")
    assert user is not None
    client, _ = create_client(server)
    issue_grant(server, client_id=client.client_id, subject=user.id)
    listed = cli("tokens", "list", "--grants", "--user", "BOB", "--json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 1


def test_must_change_password_flag_is_set_listed_and_cleared(
    cli: Charter, server: AuthServer
) -> None:
    added = cli(
        "users", "add", "carol", "--password-stdin", "--must-change-password", "--json",
        input="one-time-pass\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["must_change_password"] is True
    cli("users", "add", "dave", "--password-stdin", input="hunter2hunter2\n")
    records = {r["username"]: r for r in json.loads(cli("users", "list", "--json").stdout)}
    assert records["carol"]["must_change_password"] is True
    assert records["dave"]["must_change_password"] is False
    table = cli("users", "list").stdout.splitlines()
    assert "MUST CHANGE PASSWORD" in table[0]
    carol_line = next(line for line in table if line.startswith("carol"))
    assert carol_line.split()[2:5] == ["no", "active", "yes"]
    changed = cli("users", "passwd", "carol", "--password-stdin", "--json", input="carols-own\n")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["must_change_password"] is False
    user = load_user(server, "carol")
    assert user is not None
    assert not user.must_change_password


def test_racing_adds_of_one_name_create_one_user(cli: Charter, server: AuthServer) -> None:
    """Four ``charter users add`` processes for ``Eve``/``eve``/… at once: one creates the
    user, the others exit 1 saying it exists (checked before, or refused by the unique key)."""
    names = ["Eve", "eve", "EVE", "eVe"]
    command = [sys.executable, "-c", "from authserver.cli.main import main; main()"]
    options = ["--data-dir", str(cli.data_dir), "--database-url", cli.database_url]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARTER_")}
    processes = [
        subprocess.Popen(
            [*command, *options, "users", "add", name, "--password-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    ]
    # Every process gets its password only now, so that their inserts happen close together.
    results = [process.communicate("hunter2hunter2\n", timeout=120) for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 1, 1, 1], results
    for process, (_out, err) in zip(processes, results, strict=True):
        if process.returncode == 1:
            assert "exists" in err, err
    with server.database.transaction() as session:
        assert session.scalars(select(User.username_key)).all() == ["eve"]
