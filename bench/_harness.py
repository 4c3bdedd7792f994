"""Shared parts of the benchmarks: scratch databases and the settings of their servers.

Everything stays on loopback. Server processes are in :mod:`bench._procs`, the load generator
in :mod:`bench._wrk`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.storage.schema import prepare_database

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "http://127.0.0.1:8000"
RESOURCE = f"{ISSUER}/mcp"
KEY_SECRET = "bench-key-encryption-secret"
POSTGRES_ENVS = ("CHARTER_BENCH_POSTGRES_URL", "CHARTER_TEST_POSTGRES_URL")


def postgres_server_url() -> str | None:
    """The PostgreSQL server to create scratch databases on (None: PostgreSQL is skipped)."""
    for name in POSTGRES_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


@contextmanager
def scratch_database(backend: str) -> Iterator[tuple[str, Path]]:
    """A fresh, empty database (``sqlite`` or ``postgres``) and a data folder; removed after."""
    with tempfile.TemporaryDirectory(prefix="charter-bench-") as folder:
        data_dir = Path(folder)
        if backend == "sqlite":
            yield f"sqlite:///{data_dir / 'charter.db'}", data_dir
            return
        base = postgres_server_url()
        if base is None:
            raise RuntimeError("PostgreSQL needs CHARTER_BENCH_POSTGRES_URL")
        name = f"charter_bench_{secrets.token_hex(4)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False), data_dir
        finally:
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()


def settings_for(database_url: str, data_dir: Path, issuer: str = ISSUER) -> CharterSettings:
    """The deployment settings every benchmark server uses."""
    return CharterSettings(
        issuer=issuer,
        data_dir=data_dir,
        database_url=database_url,
        key_encryption_key=KEY_SECRET,
    )


def ready_server(database_url: str, data_dir: Path, issuer: str = ISSUER) -> AuthServer:
    """A context on a migrated database with a signing key (for seeding rows)."""
    server = AuthServer.build(settings_for(database_url, data_dir, issuer))
    prepare_database(server.database.engine)
    server.keys.ensure_signing_key()
    return server


def backends_from(option: str) -> list[str]:
    """``sqlite,postgres`` → the backends to run (PostgreSQL only when configured)."""
    chosen = [name.strip() for name in option.split(",") if name.strip()]
    if "postgres" in chosen and postgres_server_url() is None:
        print("PostgreSQL skipped: set CHARTER_BENCH_POSTGRES_URL (or CHARTER_TEST_POSTGRES_URL)")
        chosen.remove("postgres")
    return chosen
