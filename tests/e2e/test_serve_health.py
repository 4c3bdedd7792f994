"""``charter serve`` on PostgreSQL behind a TCP forwarder: ``/readyz`` turns 503 when the
database becomes unreachable and 200 again when it returns; ``/healthz`` stays 200 throughout;
neither is written to the access log at ``info``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.charter_process import run_charter
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

#: How long a readiness change may take to show (answers are cached for a second).
CHANGE_DEADLINE = 30.0


@pytest.fixture
def proxied_postgres_url() -> Iterator[tuple[str, TcpProxy]]:
    if postgres_base_url() is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        parsed = make_url(url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        proxy.start()
        try:
            through = parsed.set(host="127.0.0.1", port=proxy.port)
            yield through.render_as_string(hide_password=False), proxy
        finally:
            proxy.close()


def wait_for_status(url: str, status: int) -> httpx.Response:
    """Poll ``url`` until it answers ``status`` (bounded by :data:`CHANGE_DEADLINE`)."""
    deadline = time.monotonic() + CHANGE_DEADLINE
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_readyz_follows_the_database(
    tmp_path: Path, proxied_postgres_url: tuple[str, TcpProxy]
) -> None:
    database_url, proxy = proxied_postgres_url
    with run_charter(tmp_path / "data", "--database-url", database_url) as charter:
        ready = wait_for_status(charter.base_url + "/readyz", 200)
        assert ready.status_code == 200, ready.text
        proxy.cut()
        down = wait_for_status(charter.base_url + "/readyz", 503)
        assert down.status_code == 503, down.text
        assert down.json()["checks"]["database"] == "unreachable"
        assert httpx.get(charter.base_url + "/healthz", timeout=10).status_code == 200
        proxy.restore()
        back = wait_for_status(charter.base_url + "/readyz", 200)
        assert back.status_code == 200, back.text
        assert back.json()["checks"] == {
            "database": "ok",
            "migrations": "ok",
            "signing_key": "ok",
        }
        log = charter.stderr
    assert "/readyz" not in log
    assert "/healthz" not in log
