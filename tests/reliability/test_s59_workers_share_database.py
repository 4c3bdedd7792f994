"""S59: several workers on one database — a code from worker A redeems at worker B, every worker
serves the same JWKS, and the start-up jobs are idempotent when raced.

Each "worker" is an :class:`AuthServer` context of its own (own engine, own key cache) built
from the same database URL and served on its own uvicorn socket, as ``charter serve --workers``
does with processes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from authserver.context import AuthServer
from authserver.deployment import FirstStart, initialize
from authserver.endpoints.app import create_app
from authserver.storage.models import SigningKey, User
from tests.support.browser_flow import authorize_params, authorize_with_login, pkce_pair
from tests.support.factories import create_client, create_user
from tests.support.live import serve_app
from tests.support.reliability import KEY_SECRET, build_worker, ready_worker

REDIRECT_URI = "http://127.0.0.1/callback"
STARTERS = 4
START_UP_PROCESSES = 2


def _count(server: AuthServer, model: type[SigningKey] | type[User]) -> int:
    with server.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def test_s59_code_from_worker_a_redeems_at_worker_b(
    fresh_database_url: str, tmp_path: Path
) -> None:
    worker_a = ready_worker(fresh_database_url, tmp_path / "a")
    worker_b = build_worker(fresh_database_url, tmp_path / "b")
    try:
        create_user(worker_a)
        client, _ = create_client(worker_a, redirect_uris=[REDIRECT_URI])
        verifier, challenge = pkce_pair()
        with (
            serve_app(create_app(worker_a)) as url_a,
            serve_app(create_app(worker_b)) as url_b,
        ):
            async with httpx.AsyncClient(base_url=url_a) as browser:
                location = await authorize_with_login(
                    browser,
                    authorize_params(client.client_id, REDIRECT_URI, challenge, scope="mcp"),
                    "alice",
                    "correct horse battery",
                )
            code = location.params["code"]
            async with httpx.AsyncClient() as http:
                form = {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                    "client_id": client.client_id,
                }
                redeemed = await http.post(f"{url_b}/token", data=form)
                assert redeemed.status_code == 200, redeemed.text
                assert redeemed.json()["access_token"]
                # The code was consumed for every worker, not just for B.
                replay = await http.post(f"{url_a}/token", data=form)
                assert replay.status_code == 400
                assert replay.json()["error"] == "invalid_grant"
                jwks_a = (await http.get(f"{url_a}/jwks.json")).json()
                jwks_b = (await http.get(f"{url_b}/jwks.json")).json()
        assert jwks_a == jwks_b
        assert len(jwks_a["keys"]) == 1
    finally:
        worker_a.database.dispose()
        worker_b.database.dispose()


def test_s59_concurrent_start_up_threads_are_idempotent(
    fresh_database_url: str, tmp_path: Path
) -> None:
    workers = [build_worker(fresh_database_url, tmp_path / f"w{i}") for i in range(STARTERS)]
    barrier = threading.Barrier(STARTERS)
    results: list[FirstStart] = []
    errors: list[BaseException] = []

    def start(server: AuthServer) -> None:
        barrier.wait()
        try:
            results.append(initialize(server))
        except BaseException as exc:  # recorded and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assert len(results) == STARTERS
        assert sum(result.created_signing_key for result in results) == 1
        assert sum(result.admin_password is not None for result in results) == 1
        assert _count(workers[0], SigningKey) == 1
        assert _count(workers[0], User) == 1
        assert workers[0].keys.jwks() == workers[-1].keys.jwks()
    finally:
        for worker in workers:
            worker.database.dispose()


_START_UP_SCRIPT = """
import sys
from pathlib import Path
from authserver.deployment import initialize
from tests.support.reliability import build_worker
first = initialize(build_worker(sys.argv[1], Path(sys.argv[2])))
print(int(first.created_signing_key), int(first.admin_password is not None))
"""


@pytest.mark.postgres
def test_s59_concurrent_start_up_processes_are_idempotent(
    postgres_url: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _START_UP_SCRIPT, postgres_url, str(tmp_path / f"p{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for i in range(START_UP_PROCESSES)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    flags = [tuple(int(part) for part in out.split()) for out, _err in outputs]
    assert sum(created_key for created_key, _ in flags) == 1
    assert sum(created_admin for _, created_admin in flags) == 1
    check = build_worker(postgres_url, tmp_path / "check", key_encryption_key=KEY_SECRET)
    try:
        assert _count(check, SigningKey) == 1
        assert _count(check, User) == 1
    finally:
        check.database.dispose()
