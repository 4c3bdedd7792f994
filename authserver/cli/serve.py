"""``charter serve``: run the whole deployment (authorization server + MCP server) with uvicorn.

On the first start with nothing configured it creates the SQLite database in the data folder,
runs the migrations, makes a signing key and creates the user ``admin`` whose one-time password
is printed once (never logged). Every start prints the MCP URL to give to clients.

Each option can also be set with the ``CHARTER_*`` environment variable shown in ``--help``.
SIGTERM/SIGINT drain: SSE streams end at once (clients resume with ``Last-Event-ID``), running
requests get ``--graceful-timeout`` seconds to finish, and a completed drain exits 0
(:mod:`authserver.ops.clean_exit`). Behind a load balancer, ``--forwarded-allow-ips`` names the
proxies whose ``X-Forwarded-For`` gives the client address
(:mod:`authserver.config.trusted_proxies`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from authserver.cli.main import CliOptions
from authserver.config.settings import is_loopback_host
from authserver.config.trusted_proxies import DEFAULT_TRUSTED_PROXIES, parse_trusted_proxies
from authserver.ops.clean_exit import run_server, run_workers
from authserver.ops.logging_setup import LogFormat, configure_logging, logging_config

if TYPE_CHECKING:
    from authserver.deployment import DeploymentSettings

#: Hosts meaning "every interface"; the default issuer then names the loopback address.
_ANY_HOST = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not bound here
FACTORY = "authserver.deployment:create_deployment_app"


def default_issuer(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a loopback host (no trailing slash)."""
    if host in _ANY_HOST:
        host = "127.0.0.1"
    if not is_loopback_host(host):
        raise click.UsageError(
            f"--issuer is required when listening on {host}: give the public https URL clients "
            "use (for example --issuer https://mcp.example.com behind a TLS proxy)"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _strip_root_slash(issuer: str) -> str:
    """``https://host/`` names the origin: the issuer is ``https://host`` (RFC 8414 §2)."""
    return issuer[:-1] if issuer.endswith("/") and issuer.count("/") == 3 else issuer


def _describe_database(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _trusted_proxies(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    try:
        return parse_trusted_proxies(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _group_options(ctx: click.Context) -> dict[str, Any]:
    """``--database-url``/``--data-dir`` given to the ``charter`` group, if any."""
    options = ctx.find_object(CliOptions)
    found: dict[str, Any] = {}
    if options is not None and options.database_url:
        found["database_url"] = options.database_url
    if options is not None and options.data_dir is not None:
        found["data_dir"] = options.data_dir
    return found


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="CHARTER_HOST",
    show_envvar=True,
    help="Interface to listen on.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    envvar="CHARTER_PORT",
    show_envvar=True,
    help="TCP port to listen on.",
)
@click.option(
    "--issuer",
    envvar="CHARTER_ISSUER",
    show_envvar=True,
    metavar="URL",
    help="Public URL of this server (behind a proxy: its https URL); default http://HOST:PORT.",
)
@click.option(
    "--database-url",
    envvar="CHARTER_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="SQLAlchemy URL; default sqlite:///<data-dir>/charter.db. "
    "Use postgresql+psycopg://… for several workers.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CHARTER_DATA_DIR",
    show_envvar=True,
    help="Folder of the SQLite database and the key-encryption key file.",
)
@click.option(
    "--tools",
    "tool_modules",
    multiple=True,
    metavar="MODULE",
    help="Python module of extra tools/prompts/resources (repeatable; env CHARTER_TOOLS: "
    "names separated by spaces or commas, or a JSON list).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="CHARTER_WORKERS",
    show_envvar=True,
    help="Worker processes (more than one needs PostgreSQL).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="CHARTER_LOG_FORMAT",
    show_envvar=True,
    help="Readable lines or one JSON object per line.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="CHARTER_LOG_LEVEL",
    show_envvar=True,
    help="Lowest level logged.",
)
@click.option(
    "--ssrf-allow-host",
    "ssrf_allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Let client metadata documents be fetched from this private/loopback host "
    "(repeatable; tests and private deployments; env CHARTER_SSRF_ALLOWED_HOSTS as a JSON list).",
)
@click.option(
    "--ssrf-allow-http",
    is_flag=True,
    default=None,
    envvar="CHARTER_SSRF_ALLOW_HTTP",
    show_envvar=True,
    help="Also allow plain http for those hosts (tests only).",
)
@click.option(
    "--graceful-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    envvar="CHARTER_GRACEFUL_TIMEOUT",
    show_envvar=True,
    help="Seconds running requests get to finish on SIGTERM.",
)
@click.option(
    "--forwarded-allow-ips",
    "trusted_proxies",
    default=DEFAULT_TRUSTED_PROXIES,
    show_default=True,
    callback=_trusted_proxies,
    envvar="CHARTER_FORWARDED_ALLOW_IPS",
    show_envvar=True,
    metavar="IPS",
    help="Proxies (IPs/networks, comma-separated; '' for none) whose X-Forwarded-For header "
    "gives the client address used by per-IP limits. '*' trusts every peer and takes the "
    "header's first address: only behind a proxy that replaces the header.",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    issuer: str | None,
    database_url: str | None,
    data_dir: Path | None,
    tool_modules: tuple[str, ...],
    workers: int,
    log_format: LogFormat,
    log_level: str,
    ssrf_allow_hosts: tuple[str, ...],
    ssrf_allow_http: bool | None,
    graceful_timeout: float,
    trusted_proxies: list[str],
) -> None:
    """Run the authorization server and the MCP server on one origin."""
    # Imported here so that `charter --help` and the admin commands stay fast.
    from authserver.context import AuthServer
    from authserver.deployment import (
        TOOL_MODULE_ERRORS,
        DeploymentSettings,
        build_deployment,
        build_registry,
        initialize,
    )
    from authserver.storage.schema import DatabaseNotReadyError
    from authserver.storage.signing_keys import KeyDecryptionError

    values: dict[str, Any] = _group_options(ctx)
    values["issuer"] = _strip_root_slash(issuer) if issuer else default_issuer(host, port)
    values["log_format"] = log_format
    if database_url:
        values["database_url"] = database_url
    if data_dir is not None:
        values["data_dir"] = data_dir
    if tool_modules:
        values["tools"] = tool_modules
    if ssrf_allow_hosts:
        values["ssrf_allowed_hosts"] = ssrf_allow_hosts
    if ssrf_allow_http is not None:
        values["ssrf_allow_http"] = ssrf_allow_http
    try:
        settings = DeploymentSettings(**values)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise click.UsageError(f"invalid configuration: {reasons}") from exc
    if workers > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        raise click.UsageError(
            "--workers above 1 needs PostgreSQL (--database-url postgresql+psycopg://…): "
            "SQLite keeps the database in one file that only one process should write"
        )

    configure_logging(log_format, log_level.upper())
    # Like `python -m` and uvicorn: tool modules next to where `charter serve` runs import.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    server = AuthServer.build(settings)
    try:
        registry = build_registry(server, settings.tools)
    except TOOL_MODULE_ERRORS as exc:
        server.database.dispose()
        raise click.UsageError(f"--tools: {exc}") from exc
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
    _announce(settings.issuer, settings.resource_url, settings.database_url, first.admin_password)

    config_args: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": logging_config(log_format, log_level.upper()),
        "access_log": False,
        "timeout_graceful_shutdown": graceful_timeout,
        "lifespan": "on",
        "server_header": False,
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": trusted_proxies,
    }
    if workers == 1:
        deployment = build_deployment(
            settings, server=server, registry=registry, drain_on_signals=True
        )
        status = run_server(uvicorn.Config(deployment.app, **config_args))
    else:
        server.database.dispose()
        _export_settings(settings)
        status = run_workers(uvicorn.Config(FACTORY, factory=True, workers=workers, **config_args))
    if status:
        ctx.exit(status)


def _announce(issuer: str, mcp_url: str, database_url: str, password: str | None) -> None:
    """Print the start-up facts once, on stdout (not through logging: never logged)."""
    lines = [
        f"Charter authorization server: {issuer}",
        f"Database: {_describe_database(database_url)}",
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
    lines.append(f"Connect your MCP client to {mcp_url}")
    click.echo("\n".join(lines))
    sys.stdout.flush()


def _export_settings(settings: DeploymentSettings) -> None:
    """Hand the settings to worker processes through ``CHARTER_*`` variables."""
    exported = {
        "CHARTER_ISSUER": settings.issuer,
        "CHARTER_RESOURCE_URL": settings.resource_url,
        "CHARTER_DATABASE_URL": settings.database_url,
        "CHARTER_DATA_DIR": str(settings.data_dir),
        "CHARTER_TOOLS": json.dumps(list(settings.tools)),
        "CHARTER_LOG_FORMAT": settings.log_format,
        "CHARTER_SSRF_ALLOWED_HOSTS": json.dumps(list(settings.ssrf_allowed_hosts)),
        "CHARTER_SSRF_ALLOW_HTTP": "true" if settings.ssrf_allow_http else "false",
    }
    os.environ.update(exported)
