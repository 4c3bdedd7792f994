"""S57/S25 under a crash: ``kill -9`` of a worker in the middle of a burst of refresh grants.

:data:`FAMILIES` refresh-token families (one grant each, RFC 9700 §4.14.2 rotation) refresh in a
loop against ``charter serve``, and a worker is killed with SIGKILL while they do: on
PostgreSQL each of ``--workers 2`` in turn (the supervisor starts a new one; the other keeps
serving), on SQLite the only process (a new ``charter serve`` is started on the same files).
A client whose request was cut off (connection reset, no response) retries with the refresh
token it still holds, as any OAuth client would.

The decision (S25/S57 win over convenience): a retry with a refresh token whose rotation was
already committed is **reuse**, never an idempotent replay of the lost response. S57 asks that N
presentations of one refresh token give exactly one 200, and a server cannot tell a client
retrying after a lost response from a thief replaying a stolen token; returning the same new
pair again (or a fresh one) would hand the new tokens to whoever presents the old one. So the
retry is refused with ``invalid_grant``, which tells the client to authorize again (within
``refresh_reuse_grace_seconds`` the grant survives, S25; later the grant is revoked, S24). A
request cut off *before* its transaction committed left nothing behind (the rotation and the
new tokens are one transaction), so its retry succeeds and the chain continues.

What the test asserts, from every response and the database afterwards:

* no request answers anything but 200 or 400 ``invalid_grant``, and ``invalid_grant`` only on
  the retry of a request that was cut off;
* every token a client received is recorded (its refresh-token row and its access token's
  ``jti`` are in the database);
* no family ever has two live refresh tokens;
* a family whose client was never refused is intact: its only live refresh token is the one the
  client holds, the database holds no token of it that the client did not receive (no committed
  rotation's response was lost without the client being told), and it refreshes once more;
* a family whose client was refused really had its rotation committed and its response lost: the
  token the client presented is rotated, and its successor, the only token of the family the
  client never received, is the one live token left (or the grant is revoked and none is live).

Each run kills several times during the burst; the counts of cut-off requests, of retries
that continued the chain and of refused ones are printed (``-s``) so a run shows which cases it
reached. The commit-to-response window is short, so refused retries are rare (measured: 0 to 2
of 15 to 45 cut-off requests per run on PostgreSQL, 0 to 3 of 35 to 65 on SQLite); the
invariants hold for every outcome. A server that answered a retry within the grace with a new
pair instead (the "idempotent grace" design) failed the SQLite test in 2 runs of 2 (two live
refresh tokens in a family).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from authserver.storage.crypto import hash_token
from authserver.storage.models import AccessToken, Grant, RefreshToken
from tests.support.charter_process import CharterProcess, charter_env, run_charter
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user
from tests.support.live import free_port
from tests.support.reliability import build_worker

#: Families refreshing at once.
FAMILIES = 24
#: SIGKILLs during the burst: of each of the two first workers in turn (PostgreSQL), of the
#: whole server (SQLite, which is then started again).
KILLS = 2
SQLITE_KILLS = 2
#: At most this long the second kill waits for the first victim's replacement to serve.
REPLACEMENT_WAIT = 20.0
#: Seconds of burst before the first kill, between kills, and after the last one.
WARM_UP = 1.0
BETWEEN = 2.0
AFTER = 1.5
#: How long a cut-off client keeps retrying, and how often (a restarted ``charter serve`` takes
#: 3 to 20 s to answer again on a loaded 2-core machine).
RETRY_SECONDS = 45.0
RETRY_EVERY = 0.1


def jti_of(access_token: str) -> str:
    """The ``jti`` claim of a JWT (read, not verified: the server signed it)."""
    payload = access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return str(claims["jti"])


@dataclass
class Family:
    """One grant's chain as its client sees it."""

    refresh_token: str
    received_refresh: list[str] = field(default_factory=list)
    received_jtis: list[str] = field(default_factory=list)
    grant_id: str | None = None
    cut_off: int = 0
    continued_after_cut: int = 0
    refused: str | None = None
    refused_token: str | None = None
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass
class Burst:
    families: list[Family]
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def refresh_chain(base_url: str, family: Family, client_id: str, burst: Burst) -> None:
    """Refresh until told to stop or refused; after a cut-off request, retry the same token."""
    cut = False
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        while not burst.stop.is_set():
            try:
                response = await http.post(
                    "/token", data=refresh_form(family.refresh_token, client_id)
                )
            except httpx.TransportError:
                family.cut_off += 1
                cut = True
                retry_until = time.monotonic() + RETRY_SECONDS
                while True:  # the server is coming back: retry once it accepts connections
                    await asyncio.sleep(RETRY_EVERY)
                    try:
                        response = await http.post(
                            "/token", data=refresh_form(family.refresh_token, client_id)
                        )
                        break
                    except httpx.TransportError:
                        if time.monotonic() > retry_until:
                            raise
            family.statuses[response.status_code] += 1
            if response.status_code == 200:
                body = response.json()
                family.refresh_token = body["refresh_token"]
                family.received_refresh.append(body["refresh_token"])
                family.received_jtis.append(jti_of(body["access_token"]))
                if cut:
                    family.continued_after_cut += 1
                cut = False
                continue
            family.refused = f"{response.status_code} {response.text}"
            family.refused_token = family.refresh_token if cut else None
            return


def worker_pids(supervisor: int) -> list[int]:
    """The uvicorn worker processes (spawned children) of ``supervisor``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == supervisor and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return sorted(pids)


def wait_for_workers(charter: CharterProcess, started: int, timeout: float) -> list[int]:
    """The live workers of ``charter`` once ``started`` workers in all have started up (or
    ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if charter.stderr.count("Application startup complete") >= started:
            break
        time.sleep(0.05)
    return worker_pids(charter.process.pid)


def families_of(engine: Engine, families: list[Family]) -> None:
    """Fill in each family's grant id (from its first access token)."""
    with engine.connect() as conn:
        for family in families:
            family.grant_id = conn.execute(
                select(AccessToken.grant_id).where(AccessToken.jti == family.received_jtis[0])
            ).scalar_one()


def check_families(engine: Engine, families: list[Family], now: int) -> None:
    """The invariants of the module docstring, against the database."""
    with engine.connect() as conn:
        for index, family in enumerate(families):
            label = f"family {index} ({family.statuses}, cut off {family.cut_off})"
            rows = conn.execute(
                select(
                    RefreshToken.token_hash, RefreshToken.rotated_at, RefreshToken.revoked_at
                ).where(RefreshToken.grant_id == family.grant_id, RefreshToken.expires_at > now)
            ).all()
            stored = {row.token_hash: row for row in rows}
            live = {
                row.token_hash for row in rows if row.rotated_at is None and row.revoked_at is None
            }
            jtis = set(
                conn.execute(
                    select(AccessToken.jti).where(AccessToken.grant_id == family.grant_id)
                ).scalars()
            )
            grant_revoked = conn.execute(
                select(Grant.revoked_at).where(Grant.id == family.grant_id)
            ).scalar_one()
            received = {hash_token(token) for token in family.received_refresh}
            assert received <= set(stored), f"{label}: a received refresh token is not recorded"
            assert set(family.received_jtis) <= jtis, f"{label}: a received jti is not recorded"
            assert len(live) <= 1, f"{label}: {len(live)} live refresh tokens"
            assert set(family.statuses) <= {200, 400}, label
            if family.refused is None:
                assert grant_revoked is None, f"{label}: revoked though never refused"
                assert live == {hash_token(family.refresh_token)}, label
                assert set(stored) == received, f"{label}: a rotation's response was lost"
                assert jtis == set(family.received_jtis), f"{label}: an access token was lost"
                continue
            assert "invalid_grant" in family.refused, f"{label}: {family.refused}"
            assert family.refused_token is not None, (
                f"{label}: refused without a cut-off request before it: {family.refused}"
            )
            presented = stored[hash_token(family.refused_token)]
            assert presented.rotated_at is not None, f"{label}: refused, but never rotated"
            unreceived = set(stored) - received
            assert len(unreceived) == 1, f"{label}: {len(unreceived)} tokens never received"
            if grant_revoked is None:
                assert live == unreceived, label
            else:
                assert live == set(), label


async def run_burst(
    charter_url: str, families: list[Family], client_id: str, kill: Callable[[], None], kills: int
) -> None:
    """Refresh every family while ``kill()`` is called ``kills`` times."""
    burst = Burst(families)
    tasks = [
        asyncio.create_task(refresh_chain(charter_url, family, client_id, burst))
        for family in families
    ]
    await asyncio.sleep(WARM_UP)
    for _ in range(kills):
        await asyncio.to_thread(kill)
        await asyncio.sleep(BETWEEN)
    await asyncio.sleep(AFTER)
    burst.stop.set()
    await asyncio.gather(*tasks)


async def start_families(
    charter: CharterProcess, database_url: str, tmp_path: Path
) -> tuple[list[Family], str, Engine]:
    """A public client and :data:`FAMILIES` grants, each redeemed from its own code."""
    context = build_worker(database_url, tmp_path / "context", issuer=charter.base_url)
    try:
        client, _ = create_client(context)
        user = create_user(context)
        families = []
        async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
            for _ in range(FAMILIES):
                issued = create_code(
                    context, client_id=client.client_id, subject=user.id, resource=charter.mcp_url
                )
                response = await http.post("/token", data=code_form(issued))
                assert response.status_code == 200, response.text
                body = response.json()
                families.append(
                    Family(
                        body["refresh_token"],
                        received_refresh=[body["refresh_token"]],
                        received_jtis=[jti_of(body["access_token"])],
                    )
                )
    finally:
        context.database.dispose()
    engine = create_engine(database_url)
    families_of(engine, families)
    return families, client.client_id, engine


async def finish(
    charter_url: str, families: list[Family], client_id: str, engine: Engine, kills: int
) -> None:
    """Check the invariants, then refresh every intact family once more."""
    try:
        check_families(engine, families, int(time.time()))
    finally:
        engine.dispose()
    async with httpx.AsyncClient(base_url=charter_url, timeout=30) as http:
        for family in families:
            if family.refused is None:
                again = await http.post(
                    "/token", data=refresh_form(family.refresh_token, client_id)
                )
                assert again.status_code == 200, again.text
    cut = sum(family.cut_off for family in families)
    continued = sum(family.continued_after_cut for family in families)
    refused = sum(family.refused is not None for family in families)
    refreshes = sum(family.statuses[200] for family in families)
    print(
        f"refreshes {refreshes}, cut off {cut}, continued after retry {continued}, "
        f"refused (rotation committed, response lost) {refused}"
    )
    assert cut >= kills, "the kills cut no request off: the test did not test anything"


@pytest.mark.postgres
@pytest.mark.e2e
async def test_s57_kill_9_of_one_of_two_postgres_workers_mid_refresh_burst(
    postgres_url: str, tmp_path: Path
) -> None:
    with run_charter(
        tmp_path / "data", "--workers", "2", "--database-url", postgres_url
    ) as charter:
        first_workers = wait_for_workers(charter, 2, RETRY_SECONDS)
        assert len(first_workers) == 2, charter.stderr
        killed: list[int] = []
        families, client_id, engine = await start_families(charter, postgres_url, tmp_path)

        def kill_one() -> None:
            # The previous victim's replacement should serve before the other worker dies.
            wait_for_workers(charter, 2 + len(killed), REPLACEMENT_WAIT)
            victim = first_workers[len(killed)]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        await run_burst(charter.base_url, families, client_id, kill_one, KILLS)
        await finish(charter.base_url, families, client_id, engine, KILLS)
        assert charter.process.poll() is None, "the supervisor died with its workers"
        workers = worker_pids(charter.process.pid)
    assert len(workers) == 2 and not set(workers) & set(killed), workers


@pytest.mark.e2e
async def test_s57_kill_9_of_charter_serve_on_sqlite_mid_refresh_burst(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{data_dir / 'charter.db'}"
    port = free_port()
    # A restart takes up to 20 s under load: with the longest grace, the retry of a committed
    # rotation is still only refused (after the grace it would also revoke the grant, which the
    # checks accept as well), so a server answering it with a new pair would show.
    env = charter_env(CHARTER_REFRESH_REUSE_GRACE_SECONDS="120")
    with ExitStack() as stack:
        servers = [stack.enter_context(run_charter(data_dir, port=port, env=env))]
        families, client_id, engine = await start_families(servers[0], database_url, tmp_path)

        def kill_and_restart() -> None:
            process = servers[-1].process
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            started = time.monotonic()
            servers.append(stack.enter_context(run_charter(data_dir, port=port, env=env)))
            print(f"restarted in {time.monotonic() - started:.1f} s")

        await run_burst(servers[0].base_url, families, client_id, kill_and_restart, SQLITE_KILLS)
        await finish(servers[0].base_url, families, client_id, engine, SQLITE_KILLS)
    killed = [server.process.returncode for server in servers[:-1]]
    assert killed == [-signal.SIGKILL] * SQLITE_KILLS
