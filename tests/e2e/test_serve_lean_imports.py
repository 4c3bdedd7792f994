"""A started ``charter serve`` worker has not imported what only other work needs (issue 10,
"Idle RSS"): the admin commands, Alembic (migrations), argon2 (logins), Jinja2 (pages), httpx
(outbound fetches), the upstream relying party, the STDIO bridge and the SQL dialect of the
other database load on first use.

The worker is a real ``charter serve`` subprocess on a database that an earlier start already
prepared (the first start migrates and hashes the admin's password, so it needs Alembic and
argon2). A ``SIGUSR1`` handler installed before the command runs writes the names of the
imported modules to a file; the test reads them after the server answered requests that need
none of those modules (metadata, health, a 401 from ``/mcp``).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import charter_env, run_charter

pytestmark = pytest.mark.e2e

#: Modules a serving worker must not have imported before their first use (prefixes).
LAZY_MODULES = (
    "alembic",
    "mako",
    "argon2",
    "jinja2",
    "httpx",
    "httpcore",
    "pygments",
    "authserver.cli.users",
    "authserver.cli.clients",
    "authserver.cli.idps",
    "authserver.cli.db",
    "authserver.cli.audit",
    "authserver.cli.consents",
    "authserver.cli.keys",
    "authserver.cli.tokens",
    "authserver.cli.stdio",
    "authserver.federation.relying_party",
    "authserver.federation.token_exchange",
    "resourceserver.stdio",
    "sqlalchemy.dialects.postgresql",  # the database here is SQLite
)

#: ``charter`` with a handler that lists the imported modules in ``$MODULES_FILE`` on SIGUSR1.
LISTING_CHARTER = [
    sys.executable,
    "-c",
    "import os, signal, sys\n"
    "def listing(_signum, _frame):\n"
    "    path = os.environ['MODULES_FILE']\n"
    "    with open(path + '.tmp', 'w') as out:\n"
    "        out.write('\\n'.join(sorted(sys.modules)))\n"
    "    os.replace(path + '.tmp', path)\n"
    "signal.signal(signal.SIGUSR1, listing)\n"
    "from authserver.cli.main import main; main()",
]


def _imported(path: Path) -> list[str]:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, "the worker wrote no module list"
        time.sleep(0.1)
    return path.read_text().split("\n")


def _lazy(names: list[str]) -> list[str]:
    return [
        name
        for name in names
        if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_MODULES)
    ]


def test_a_started_worker_has_not_imported_what_it_loads_on_first_use(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with run_charter(data_dir) as first:  # migrations, signing key and the first admin
        assert first.printed_password is not None
    listing = tmp_path / "modules.txt"
    env = charter_env(MODULES_FILE=str(listing))
    with run_charter(data_dir, env=env, program=LISTING_CHARTER) as running:
        for path in ("/.well-known/oauth-authorization-server", "/healthz", "/readyz"):
            assert httpx.get(running.base_url + path, timeout=10).status_code == 200
        assert httpx.post(running.base_url + "/mcp", json={}, timeout=10).status_code == 401
        running.process.send_signal(signal.SIGUSR1)
        names = _imported(listing)
    assert "authserver.deployment" in names  # the list is the serving worker's
    assert _lazy(names) == []
