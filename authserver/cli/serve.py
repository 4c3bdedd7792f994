"""``charter serve``: run the whole deployment (authorization server + MCP server) with uvicorn.

On the first start with nothing configured it creates the SQLite database in the data folder,
runs the migrations, makes a signing key and creates the user ``admin`` whose one-time password
is printed once (never logged). Every start prints the MCP URL to give to clients.

Every setting of :class:`~authserver.config.settings.CharterSettings` is an option here
(generated: ``--access-token-ttl`` for ``CHARTER_ACCESS_TOKEN_TTL``), except secrets, which
come from the environment only. With several workers the settings reach them as ``CHARTER_*``
variables. SIGTERM/SIGINT drain: SSE streams end at once (clients resume with
``Last-Event-ID``), running requests get ``--graceful-timeout`` seconds to finish, and a
completed drain exits 0 (:mod:`authserver.ops.clean_exit`). Behind a load balancer,
``--forwarded-allow-ips`` names the proxies whose ``X-Forwarded-For`` gives the client address
(:mod:`authserver.config.trusted_proxies`).

With ``--authorization-server URL`` it serves only the protected MCP server in front of that
issuer (resource-server-only mode, :func:`authserver.deployment.build_resource_only`): no
admin, no signing key, only the resource server's tables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
import uvicorn
from sqlalchemy.engine import make_url
from uvicorn.config import STARTUP_FAILURE

from authserver.cli.context import build_settings, describe_database
from authserver.cli.tool_import import describe_tool_module_error
from authserver.config.options import settings_options
from authserver.config.settings import CharterSettings
from authserver.ops.clean_exit import run_server, run_workers
from authserver.ops.http_limits import limited_http_options
from authserver.ops.logging_setup import configure_logging, logging_config

#: Where prometheus-client's multiprocess mode keeps every worker's values.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

if TYPE_CHECKING:
    from authserver.context import AuthServer
    from authserver.deployment import FirstStart
    from resourceserver.mcp.registry import Registry

FACTORY = "authserver.deployment:create_deployment_app"


@click.command("serve")
@settings_options(CharterSettings)
@click.pass_context
def serve_command(ctx: click.Context, /, **options: Any) -> None:
    """Run the authorization server and the MCP server on one origin."""
    settings = build_settings(ctx, **options)
    if settings.workers > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        raise click.UsageError(
            "--workers above 1 needs PostgreSQL (--database-url postgresql+psycopg://…): "
            "SQLite keeps the database in one file that only one process should write"
        )
    configure_logging(settings.log_format, settings.log_level.upper())
    if settings.workers == 1:  # workers set tracing up themselves (create_deployment_app)
        from authserver.ops.tracing import configure_from_environment

        configure_from_environment()
    # Like `python -m` and uvicorn: tool modules next to where `charter serve` runs import.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if settings.resource_only:
        status = _run_resource_only(settings)
    else:
        server, registry, first = _prepare(settings)
        _announce(settings, first.admin_password, sorted(registry.tools))
        status = _run(settings, server, registry)
    if status:
        ctx.exit(status)


def _prepare(settings: CharterSettings) -> tuple[AuthServer, Registry, FirstStart]:
    """The context, the tools, and a database ready to serve; clear errors otherwise."""
    # Imported here so that `charter --help` and the admin commands stay fast.
    from authserver.context import AuthServer
    from authserver.deployment import TOOL_MODULE_ERRORS, build_registry, initialize
    from authserver.storage.schema import DatabaseNotReadyError
    from authserver.storage.signing_keys import KeyDecryptionError

    server = AuthServer.build(settings)
    try:
        registry = build_registry(server, settings.tools)
    except TOOL_MODULE_ERRORS as exc:
        server.database.dispose()
        raise click.UsageError(describe_tool_module_error(exc)) from exc
    # Before the first start's work: a taken port must not cost the admin's one-time password.
    if not _port_free(settings.host, settings.port):
        server.database.dispose()
        click.echo(
            f"Error: address already in use: port {settings.port} on {settings.host} is "
            "taken; stop what listens there, or choose another port with --port",
            err=True,
        )
        raise click.exceptions.Exit(STARTUP_FAILURE)
    try:
        first = initialize(server)
    except KeyDecryptionError as exc:
        server.database.dispose()
        raise click.ClickException(
            f"{exc}. Every worker sharing this database needs the same key-encryption key."
        ) from exc
    except DatabaseNotReadyError as exc:
        server.database.dispose()
        raise click.ClickException(str(exc)) from exc
    return server, registry, first


def _run_resource_only(settings: CharterSettings) -> int:
    """The MCP server alone in front of ``--authorization-server``; the exit status."""
    from authserver.deployment import (
        TOOL_MODULE_ERRORS,
        build_registry,
        build_resource_only,
        prepare_resource_database,
    )
    from authserver.storage.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        registry = build_registry(engine, settings.tools)
    except TOOL_MODULE_ERRORS as exc:
        engine.dispose()
        raise click.UsageError(describe_tool_module_error(exc)) from exc
    prepare_resource_database(engine)
    click.echo(
        f"Charter MCP server behind the authorization server {settings.authorization_server}\n"
        f"Database: {describe_database(settings.database_url)}\n"
        f"Connect your MCP client to {settings.resource_url}"
    )
    sys.stdout.flush()
    if settings.workers == 1:
        deployment = build_resource_only(
            settings, engine=engine, registry=registry, drain_on_signals=True, tune_gc=True
        )
        return run_server(uvicorn.Config(deployment.app, **_uvicorn_args(settings)))
    engine.dispose()
    os.environ.update(settings.environment())
    config = uvicorn.Config(
        FACTORY, factory=True, workers=settings.workers, **_uvicorn_args(settings)
    )
    return run_workers(config)


def _uvicorn_args(settings: CharterSettings) -> dict[str, Any]:
    trusted = settings.trusted_proxies
    level = settings.log_level.upper()
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": logging_config(settings.log_format, level),
        "access_log": False,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "lifespan": "on",
        "server_header": False,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
        **limited_http_options(),  # S100: request head size, line count and time capped
    }


def _run(settings: CharterSettings, server: AuthServer, registry: Registry) -> int:
    """Serve until SIGTERM/SIGINT, in this process or in workers; the exit status."""
    from authserver.deployment import build_deployment

    config_args = _uvicorn_args(settings)
    if settings.workers == 1:
        deployment = build_deployment(
            settings, server=server, registry=registry, drain_on_signals=True, tune_gc=True
        )
        return run_server(uvicorn.Config(deployment.app, **config_args))
    server.database.dispose()
    os.environ.update(settings.environment())  # how the workers receive the settings
    config = uvicorn.Config(FACTORY, factory=True, workers=settings.workers, **config_args)
    with worker_metrics_folder():
        return run_workers(config)


@contextlib.contextmanager
def worker_metrics_folder() -> Iterator[None]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for the workers' metrics (unless the operator set
    one), removed when they have stopped."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="charter-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def _port_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be listened on now (checked before saying where to
    connect)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _announce(settings: CharterSettings, password: str | None, tools: list[str]) -> None:
    """Print the start-up facts once, on stdout (not through logging: never logged)."""
    modules = ", ".join(settings.tools) if settings.tools else "none (built-in tools only)"
    lines = [
        f"Charter authorization server: {settings.issuer}",
        f"Database: {describe_database(settings.database_url)}",
        f"Tool modules loaded: {modules}; tools: {', '.join(tools) or 'none'}",
    ]
    if password is not None:
        lines += [
            "",
            "Created the first user 'admin' with this one-time password (shown only now):",
            f"    {password}",
            "The first browser login with it asks you to choose your own password before it",
            "continues (or set one now with `charter users passwd admin`).",
            "",
        ]
    lines.append(f"Connect your MCP client to {settings.resource_url}")
    lines += [
        f"  or to {settings.server_url(declared)} ({declared.name})"
        for declared in settings.mcp_servers
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()
