"""Housekeeping that ``charter serve`` runs in the background: the batched TTL purge of expired
rows (SECURITY-CASES S64) and the reaping of dynamically registered clients never used (RFC 7591
registrations that never got a token, S48), plus expired client ID metadata documents.

Every worker runs it; each step is an idempotent batched delete, so workers racing each other
only share the work. A failing run (database down) is logged and tried again next interval.
"""

from __future__ import annotations

import logging

import anyio
from starlette.concurrency import run_in_threadpool

from authserver.context import AuthServer
from authserver.ops.purge import purge_expired
from authserver.ops.reaper import purge_expired_metadata_documents, reap_unused_clients

logger = logging.getLogger("charter.maintenance")


def run_maintenance(server: AuthServer) -> dict[str, int]:
    """One pass of every housekeeping step; rows deleted per kind."""
    counts = purge_expired(server, wait=False)  # skipped while another process purges
    counts["unused_clients"] = reap_unused_clients(server)
    counts["expired_metadata_documents"] = purge_expired_metadata_documents(server)
    return counts


async def maintenance_loop(server: AuthServer, interval: float) -> None:
    """Run :func:`run_maintenance` every ``interval`` seconds until cancelled."""
    while True:
        await anyio.sleep(interval)
        try:
            counts = await run_in_threadpool(run_maintenance, server)
        except Exception as exc:  # keep the loop alive through outages (S61)
            logger.warning("maintenance failed (%s); retrying in %ss", type(exc).__name__, interval)
            continue
        deleted = {kind: count for kind, count in counts.items() if count}
        if deleted:
            logger.info("maintenance deleted %s", deleted)
