"""Health endpoints for load balancers and orchestrators: ``/healthz`` and ``/readyz``.

- ``GET /healthz`` (liveness): 200 while the process serves HTTP; it touches nothing else, so a
  database outage never gets a healthy worker restarted.
- ``GET /readyz`` (readiness): 200 only when the database answers, its schema is at the
  packaged migrations' head and a signing key can be loaded; 503 otherwise, with which check
  failed (the check names only, never a driver message: the endpoint is public).

Both are cheap enough to call every second: ``/readyz`` runs one ``SELECT`` of the Alembic
revision plus the key store's cached signing key, and keeps its answer for
:data:`READY_CACHE_SECONDS` so that many balancers polling many workers cost one query per
worker and second. A check that hangs (a database that accepts connections and never answers)
fails after :data:`READY_TIMEOUT_SECONDS`. Neither endpoint is logged at ``info``
(:data:`QUIET_PATHS`, used by the access log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.context import AuthServer
from authserver.storage.schema import VERSION_TABLE, head_revision, packaged_head

logger = logging.getLogger("charter.health")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
#: Paths the access log writes at ``debug`` only (balancers call them every second).
QUIET_PATHS = frozenset({HEALTH_PATH, READY_PATH})
#: How long one readiness answer is reused by this process, seconds.
READY_CACHE_SECONDS = 1.0
#: A readiness check not done by then counts as failed, seconds.
READY_TIMEOUT_SECONDS = 3.0
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class Readiness:
    """The readiness checks of one process, with their last answer cached briefly."""

    server: AuthServer
    head: str | None = field(default_factory=lambda: packaged_head() or head_revision())
    cache_seconds: float = READY_CACHE_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _cached: tuple[float, dict[str, str]] | None = None

    def _database_checks(self) -> dict[str, str]:
        try:
            with self.server.database.engine.connect() as connection:
                revision = connection.execute(
                    text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
                ).scalar()
        except SQLAlchemyError as exc:
            logger.debug("readiness: database check failed: %s", type(exc).__name__)
            return {"database": "unreachable", "migrations": "unknown"}
        migrations = "ok" if revision == self.head else "behind"
        return {"database": "ok", "migrations": migrations}

    def _signing_key_check(self) -> str:
        try:
            self.server.keys.signing_key()
        except Exception as exc:  # any failure to load or decrypt means "not ready"
            logger.debug("readiness: signing key check failed: %s", type(exc).__name__)
            return "missing"
        return "ok"

    def run_checks(self) -> dict[str, str]:
        """Every check by name: ``ok`` or what is wrong (blocking; run in a thread)."""
        checks = self._database_checks()
        checks["signing_key"] = (
            self._signing_key_check() if checks["database"] == "ok" else "unknown"
        )
        return checks

    async def checks(self) -> dict[str, str]:
        """:meth:`run_checks`, reused for :attr:`cache_seconds`, bounded in time."""
        now = self.monotonic()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        result: dict[str, str] = {"database": "timeout", "migrations": "unknown"}
        result["signing_key"] = "unknown"
        with anyio.move_on_after(READY_TIMEOUT_SECONDS):
            result = await run_in_threadpool(self.run_checks)
        self._cached = (self.monotonic(), result)
        return result


def health_routes(readiness: Readiness) -> list[BaseRoute]:
    """``GET /healthz`` and ``GET /readyz`` (see the module docstring)."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def readyz(_request: Request) -> Response:
        checks = await readiness.checks()
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503, headers=_NO_STORE)

    return [
        Route(HEALTH_PATH, healthz, methods=["GET", "HEAD"]),
        Route(READY_PATH, readyz, methods=["GET", "HEAD"]),
    ]
