"""``charter idps``: upstream OpenID Providers users sign in with (OpenID Connect Core 1.0 §3.1;
:mod:`authserver.federation.relying_party`).

Register Charter at the provider as a confidential web client whose redirect URI is the one
``idps add`` and ``idps show`` print (``<issuer>/login/idp/callback``), then add it here. The
client secret is read from stdin (``--client-secret-stdin``) and stored encrypted under the
deployment's key-encryption key, or named as an environment variable (``--client-secret-env``)
read at each sign-in; it is never printed. With ``--auth-method private_key_jwt`` Charter makes
an RSA key instead (stored encrypted) and prints the public key set to register at the provider.
``idps link`` pre-provisions an account for a
provider added with ``--no-jit``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.cli.context import open_server
from authserver.cli.lookups import require_user
from authserver.cli.output import (
    Column,
    confirm,
    emit_record,
    emit_records,
    emit_result,
    fail,
    json_option,
    usage_error,
    yes_option,
)
from authserver.config.settings import is_loopback_host
from authserver.context import AuthServer
from authserver.federation.accounts import find_link, new_link
from authserver.federation.client_assertion import new_client_key, public_jwk
from authserver.federation.providers import (
    AUTH_METHODS,
    DEFAULT_SCOPES,
    PRIVATE_KEY_JWT,
    ProviderConfigError,
    check_scopes,
    check_slug,
    find_provider,
    parse_claim_rule,
)
from authserver.federation.relying_party import callback_uri
from authserver.storage.audit import record_event
from authserver.storage.crypto import new_id
from authserver.storage.models import IdentityProvider, UserLink

IDP_COLUMNS = (
    Column("SLUG", "slug"),
    Column("NAME", "display_name"),
    Column("ISSUER", "issuer"),
    Column("CLIENT ID", "client_id"),
    Column("ACCOUNTS", "accounts", lambda value: "just in time" if value else "pre-provisioned"),
    Column("LINKED USERS", "linked_users"),
    Column("STATUS", "status"),
)
SHOW_TIMES = ("created_at", "updated_at")


def idp_record(session: Session, server: AuthServer, row: IdentityProvider) -> dict[str, Any]:
    """A provider as the CLI shows it: settings and state, never the client secret."""
    linked = session.scalar(
        select(func.count()).select_from(UserLink).where(UserLink.issuer == row.issuer)
    )
    if row.client_secret_env:
        secret = f"from ${row.client_secret_env}"
    else:
        secret = "stored encrypted" if row.client_secret_encrypted else "none"
    record: dict[str, Any] = {
        "slug": row.slug,
        "display_name": row.display_name,
        "issuer": row.issuer,
        "client_id": row.client_id,
        "client_secret": secret,
        "token_endpoint_auth_method": row.token_endpoint_auth_method,
        "scopes": row.scopes,
        "status": "enabled" if row.enabled else "disabled",
        "accounts": row.jit,
        "allowed_email_domains": list(row.allowed_email_domains or []),
        "required_claims": dict(row.required_claims or {}),
        "scope_claim": row.scope_claim,
        "scope_map": dict(row.scope_map or {}),
        "linked_users": int(linked or 0),
        "redirect_uri": callback_uri(server),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if row.client_key_encrypted:
        record["public_jwks"] = {"keys": [public_jwk(row.client_key_encrypted, server.keys)]}
    return record


def checked_issuer(issuer: str) -> str:
    """``issuer`` when it is an https URL (http only on loopback) without query or fragment."""
    try:
        url = httpx.URL(issuer)
    except httpx.InvalidURL:
        usage_error(f"--issuer {issuer!r} is not a URL")
    loopback_http = url.scheme == "http" and is_loopback_host(url.host)
    if not (url.scheme == "https" or loopback_http) or not url.host:
        usage_error("--issuer must be an https URL (http only on loopback, for tests)")
    if url.query or url.fragment or url.userinfo:
        usage_error("--issuer has no query, fragment or user name (OpenID Connect Discovery §2)")
    return issuer


def read_secret(from_stdin: bool) -> str | None:
    """The client secret from the first line of stdin, when asked for."""
    if not from_stdin:
        return None
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        usage_error("--client-secret-stdin read an empty line")
    return secret


def checked_rules(
    require_claims: Sequence[str], map_scopes: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``--require-claim`` and ``--map-scope`` as dictionaries (exit 2 when malformed)."""
    try:
        required = dict(parse_claim_rule(rule) for rule in require_claims)
        mapped = dict(parse_claim_rule(rule) for rule in map_scopes)
    except ProviderConfigError as exc:
        usage_error(str(exc))
    return required, mapped


def _find(session: Session, slug: str) -> IdentityProvider:
    row = find_provider(session, slug)
    if row is None:
        fail(f"no identity provider {slug!r}", "list them with `charter idps list`")
    return row


@click.group()
def idps() -> None:
    """Upstream OpenID Providers users sign in with."""


@idps.command("list")
@json_option
def list_idps(as_json: bool) -> None:
    """Every provider, by slug."""
    server = open_server()
    with server.database.transaction() as session:
        rows = session.scalars(select(IdentityProvider).order_by(IdentityProvider.slug)).all()
        records = [idp_record(session, server, row) for row in rows]
    emit_records(
        records,
        IDP_COLUMNS,
        as_json=as_json,
        empty="no identity providers; add one with `charter idps add SLUG --issuer URL "
        "--client-id ID --client-secret-stdin`",
    )


@idps.command("show")
@click.argument("slug")
@json_option
def show_idp(slug: str, as_json: bool) -> None:
    """Everything about SLUG except its client secret."""
    server = open_server()
    with server.database.transaction() as session:
        record = idp_record(session, server, _find(session, slug))
    emit_record(record, as_json=as_json, times=SHOW_TIMES)


def _secret_options(function: Any) -> Any:
    function = click.option(
        "--client-secret-stdin", is_flag=True, help="Read the client secret from stdin."
    )(function)
    return click.option(
        "--client-secret-env",
        metavar="VAR",
        help="Read the client secret from this environment variable at each sign-in instead.",
    )(function)


def _rule_options(function: Any) -> Any:
    for option in (
        click.option(
            "--scope", "scopes", help=f"Scopes asked upstream (default {DEFAULT_SCOPES!r})."
        ),
        click.option(
            "--auth-method",
            type=click.Choice(AUTH_METHODS),
            help="How Charter authenticates at the token endpoint (default client_secret_basic).",
        ),
        click.option(
            "--allow-domain",
            "domains",
            multiple=True,
            metavar="DOMAIN",
            help="Only verified e-mail addresses of this domain sign in (repeatable).",
        ),
        click.option(
            "--require-claim",
            "require_claims",
            multiple=True,
            metavar="CLAIM=VALUE",
            help="The ID token's CLAIM must be (or contain) VALUE (repeatable).",
        ),
        click.option(
            "--scope-claim", metavar="CLAIM", help="Claim whose values map to grantable scopes."
        ),
        click.option(
            "--map-scope",
            "map_scopes",
            multiple=True,
            metavar="VALUE=SCOPES",
            help="Users whose --scope-claim holds VALUE may grant SCOPES (repeatable).",
        ),
    ):
        function = option(function)
    return function


@idps.command("add")
@click.argument("slug")
@click.option("--issuer", required=True, help="The provider's issuer URL (exact).")
@click.option("--client-id", required=True, help="Charter's client id at the provider.")
@click.option("--name", "display_name", help="Shown as 'Sign in with NAME' (default SLUG).")
@_secret_options
@_rule_options
@click.option(
    "--no-jit", is_flag=True, help="Admit only users linked beforehand (`charter idps link`)."
)
@click.option("--disabled", is_flag=True, help="Add it without offering it yet.")
@json_option
def add_idp(
    slug: str,
    issuer: str,
    client_id: str,
    display_name: str | None,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    scopes: str | None,
    auth_method: str | None,
    domains: tuple[str, ...],
    require_claims: tuple[str, ...],
    scope_claim: str | None,
    map_scopes: tuple[str, ...],
    no_jit: bool,
    disabled: bool,
    as_json: bool,
) -> None:
    """Add the provider SLUG (its sign-in link is /login/idp/SLUG)."""
    try:
        check_slug(slug)
    except ProviderConfigError as exc:
        usage_error(f"SLUG: {exc}")
    if client_secret_stdin and client_secret_env:
        usage_error("give --client-secret-stdin or --client-secret-env, not both")
    required, mapped = checked_rules(require_claims, map_scopes)
    if mapped and not scope_claim:
        usage_error("--map-scope needs --scope-claim")
    issuer = checked_issuer(issuer)
    server = open_server()
    secret = read_secret(client_secret_stdin)
    client_key = None
    if auth_method == PRIVATE_KEY_JWT:
        client_key, _public = new_client_key(server.keys)
    now = server.now()
    row = IdentityProvider(
        id=new_id(),
        slug=slug,
        display_name=(display_name or slug).strip()[:256] or slug,
        issuer=issuer,
        client_id=client_id,
        client_secret_encrypted=server.keys.encrypt_secret(secret) if secret else None,
        client_secret_env=client_secret_env or None,
        client_key_encrypted=client_key,
        token_endpoint_auth_method=auth_method or AUTH_METHODS[0],
        scopes=check_scopes(scopes or DEFAULT_SCOPES),
        enabled=not disabled,
        jit=not no_jit,
        allowed_email_domains=[domain.lower().lstrip("@") for domain in domains],
        required_claims=required,
        scope_claim=scope_claim or None,
        scope_map=mapped,
        created_at=now,
        updated_at=now,
    )
    try:
        with server.database.transaction() as session:
            _refuse_taken(session, slug, issuer)
            session.add(row)
            session.flush()
            record_event(session, "idp_created", at=now, actor="cli", provider=slug)
            record = idp_record(session, server, row)
    except IntegrityError:
        fail(f"identity provider {slug!r} or issuer {issuer!r} exists already")
    message = (
        f"added identity provider {slug} ({row.display_name})\n"
        f"register this redirect URI at the provider: {record['redirect_uri']}"
    )
    if "public_jwks" in record:
        jwks = json.dumps(record["public_jwks"])
        message += f"\nand this public key set (private_key_jwt, RS256): {jwks}"
    emit_result(message, record, as_json=as_json)


def _refuse_taken(session: Session, slug: str, issuer: str) -> None:
    if find_provider(session, slug) is not None:
        fail(f"identity provider {slug!r} exists already", "pick another SLUG or `idps update`")
    clash = select(IdentityProvider.slug).where(IdentityProvider.issuer == issuer)
    other = session.scalars(clash).first()
    if other is not None:
        fail(f"issuer {issuer!r} is already provider {other!r}")


@idps.command("update")
@click.argument("slug")
@click.option("--name", "display_name", help="New display name.")
@click.option("--client-id", help="New client id at the provider.")
@_secret_options
@_rule_options
@click.option("--jit/--no-jit", "jit", default=None, help="Create unknown users, or not.")
@click.option("--enabled/--disabled", "enabled", default=None, help="Offer it, or not.")
@json_option
def update_idp(
    slug: str,
    display_name: str | None,
    client_id: str | None,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    scopes: str | None,
    auth_method: str | None,
    domains: tuple[str, ...],
    require_claims: tuple[str, ...],
    scope_claim: str | None,
    map_scopes: tuple[str, ...],
    jit: bool | None,
    enabled: bool | None,
    as_json: bool,
) -> None:
    """Change what is given; repeatable options replace their whole list.

    ``--allow-domain ''``, ``--require-claim ''`` and ``--map-scope ''`` clear a list.
    """
    if client_secret_stdin and client_secret_env:
        usage_error("give --client-secret-stdin or --client-secret-env, not both")
    required, mapped = checked_rules(
        [rule for rule in require_claims if rule], [rule for rule in map_scopes if rule]
    )
    server = open_server()
    secret = read_secret(client_secret_stdin)
    changes: dict[str, Any] = {
        "display_name": display_name.strip()[:256] if display_name else None,
        "client_id": client_id,
        "scopes": check_scopes(scopes) if scopes is not None else None,
        "token_endpoint_auth_method": auth_method,
        "allowed_email_domains": [d.lower().lstrip("@") for d in domains if d] if domains else None,
        "required_claims": required if require_claims else None,
        "scope_claim": scope_claim,
        "scope_map": mapped if map_scopes else None,
        "jit": jit,
        "enabled": enabled,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes and secret is None and client_secret_env is None:
        usage_error("nothing to change: give at least one option")
    now = server.now()
    with server.database.transaction() as session:
        row = _find(session, slug)
        for key, value in changes.items():
            setattr(row, key, value)
        if secret is not None:
            row.client_secret_encrypted = server.keys.encrypt_secret(secret)
            row.client_secret_env = None
        elif client_secret_env is not None:
            row.client_secret_env = client_secret_env
            row.client_secret_encrypted = None
        if row.token_endpoint_auth_method == PRIVATE_KEY_JWT and not row.client_key_encrypted:
            row.client_key_encrypted, _public = new_client_key(server.keys)
        if row.scope_map and not row.scope_claim:
            usage_error("--map-scope needs --scope-claim")
        row.updated_at = now
        record_event(session, "idp_updated", at=now, actor="cli", provider=slug)
        record = idp_record(session, server, row)
    emit_result(f"updated identity provider {slug}", record, as_json=as_json)


@idps.command("remove")
@click.argument("slug")
@yes_option
@json_option
def remove_idp(slug: str, yes: bool, as_json: bool) -> None:
    """Delete SLUG and its account links (the users stay, without this way to sign in)."""
    server = open_server()
    with server.database.transaction() as session:
        _find(session, slug)
    confirm(f"remove identity provider {slug} and its account links", yes=yes)
    now = server.now()
    with server.database.transaction() as session:
        row = _find(session, slug)
        links = session.execute(delete(UserLink).where(UserLink.issuer == row.issuer))
        session.delete(row)
        record_event(session, "idp_removed", at=now, actor="cli", provider=slug)
    removed = int(getattr(links, "rowcount", 0) or 0)
    emit_result(
        f"removed identity provider {slug} and {removed} account link(s)",
        {"slug": slug, "removed_links": removed},
        as_json=as_json,
    )


@idps.command("link")
@click.argument("slug")
@click.argument("username")
@click.option("--subject", required=True, help="The user's `sub` at the provider.")
@json_option
def link_user(slug: str, username: str, subject: str, as_json: bool) -> None:
    """Let USERNAME sign in through SLUG as the account SUBJECT (pre-provisioning)."""
    if not subject or len(subject) > 255:
        usage_error("--subject has 1-255 characters")
    server = open_server()
    now = server.now()
    with server.database.transaction() as session:
        row = _find(session, slug)
        user = require_user(session, username)
        existing = find_link(session, row.issuer, subject)
        if existing is not None:
            fail(f"that account of {slug} is already linked to a user")
        session.add(new_link(user.id, row.issuer, subject, now))
        record_event(
            session, "idp_user_linked", at=now, subject=user.id, actor="cli", provider=slug
        )
    emit_result(
        f"linked {user.username} to {slug} account {subject}",
        {"slug": slug, "username": user.username, "user_id": user.id, "subject": subject},
        as_json=as_json,
    )
