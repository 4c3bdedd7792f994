"""An unknown ``--client`` or ``--user`` is a failure (exit 1) naming what to list, never an
empty success, across ``charter tokens`` and ``charter consents``."""

from __future__ import annotations

import pytest

from authserver.context import AuthServer
from tests.support.cli_runner import Charter
from tests.support.factories import create_client, create_user

COMMANDS = [
    ("tokens", "list"),
    ("tokens", "list", "--grants"),
    ("tokens", "revoke", "--yes"),
    ("consents", "list"),
    ("consents", "list", "--all"),
    ("consents", "revoke", "--yes"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unknown_client_exits_1(cli: Charter, server: AuthServer, command: tuple[str, ...]) -> None:
    result = cli(*command, "--client", "nope")
    assert result.exit_code == 1, result.output
    assert "no client 'nope'" in result.stderr
    assert "`charter clients list`" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unknown_user_exits_1(cli: Charter, server: AuthServer, command: tuple[str, ...]) -> None:
    result = cli(*command, "--user", "nobody")
    assert result.exit_code == 1, result.output
    assert "no user 'nobody'" in result.stderr
    assert "`charter users list`" in result.stderr


@pytest.mark.parametrize("command", [("tokens", "list"), ("consents", "list")], ids=" ".join)
def test_known_client_and_user_without_rows_succeed(
    cli: Charter, server: AuthServer, command: tuple[str, ...]
) -> None:
    create_client(server, client_id="quiet")
    create_user(server, "alice")
    result = cli(*command, "--client", "quiet", "--user", "alice", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "[]"


def test_revoking_a_known_client_without_tokens_succeeds(cli: Charter, server: AuthServer) -> None:
    create_client(server, client_id="quiet")
    result = cli("tokens", "revoke", "--client", "quiet", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert '"revoked": 0' in result.stdout
