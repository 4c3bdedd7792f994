"""S103 in the terminal: ``charter clients list`` and ``show`` never print a client-chosen
name's bidirectional formatting characters raw (they would reorder the table row)."""

from __future__ import annotations

from authserver.context import AuthServer
from authserver.display import BIDI_CONTROLS
from tests.support.cli_runner import Charter
from tests.support.factories import create_client

NAME = "Good App\u202emoc.live\u2066x"


def test_s103_clients_list_and_show_neutralise_bidi_controls(
    cli: Charter, server: AuthServer
) -> None:
    client, _ = create_client(server, client_name=NAME)
    table = cli("clients", "list")
    assert table.exit_code == 0, table.output
    assert "Good App\ufffdmoc.live\ufffdx" in table.stdout
    assert not set(table.stdout) & BIDI_CONTROLS
    shown = cli("clients", "show", client.client_id)
    assert shown.exit_code == 0, shown.output
    assert "Good App\ufffdmoc.live\ufffdx" in shown.stdout
    assert not set(shown.stdout) & BIDI_CONTROLS
