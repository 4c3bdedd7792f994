"""Upstream OpenID Providers declared in a file (``CHARTER_IDENTITY_PROVIDERS_FILE``), applied
by ``charter serve`` at start, before any worker serves.

The file (TOML, or JSON when its name ends in ``.json``) has one ``[provider.SLUG]`` table per
provider with the settings of ``charter idps add`` (checked by the same
:func:`authserver.federation.providers.checked_settings`)::

    [provider.corp]
    issuer = "https://login.example.com/realms/acme"
    client_id = "charter"
    client_secret_env = "CORP_CLIENT_SECRET"
    display_name = "Corp SSO"

The client secret is never written in the file: ``client_secret_env`` names the environment
variable holding it (it must be set where ``charter serve`` runs), or ``auth_method =
"private_key_jwt"`` (RFC 7523 §2.2) makes Charter a key whose public half ``charter idps show``
prints. Applying it creates or updates each provider by slug and marks it as the file's
(``source = "file"``; ``charter idps update`` and ``remove`` refuse it); a provider the file
declared before and no longer does is disabled, not deleted, so its account links stay
(``file-removed``); providers added with ``charter idps add`` are left alone.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.federation.client_assertion import new_client_key
from authserver.federation.providers import (
    DROPPED_FROM_FILE,
    FROM_CLI,
    FROM_FILE,
    PRIVATE_KEY_JWT,
    ProviderConfigError,
    ProviderSettings,
    checked_settings,
)
from authserver.storage.audit import record_event
from authserver.storage.crypto import new_id
from authserver.storage.models import IdentityProvider

if TYPE_CHECKING:
    from authserver.context import AuthServer

#: :data:`authserver.federation.providers.AUTH_METHODS`, for the file's schema.
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]


class ProviderFileError(ValueError):
    """The providers file cannot be used; the message names the file, provider and field."""


class ProviderEntry(BaseModel):
    """One ``[provider.SLUG]`` table, as written (checked further by ``checked_settings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    issuer: str
    client_id: str
    display_name: str | None = None
    client_secret_env: str | None = None
    auth_method: AuthMethod = "client_secret_basic"
    #: Space-separated, or a list; ``openid`` is always asked.
    scopes: str | list[str] | None = None
    enabled: bool = True
    #: Create unknown users at their first sign-in; ``false``: only users linked beforehand.
    jit: bool = True
    allowed_email_domains: list[str] = []
    required_claims: dict[str, str] = {}
    scope_claim: str | None = None
    #: Value of ``scope_claim`` → the scopes it lets a user grant (space-separated, or a list).
    scope_map: dict[str, str | list[str]] = {}


def _words(value: str | list[str] | None) -> str | None:
    return " ".join(value) if isinstance(value, list) else value


def _entry(where: str, slug: str, table: Any) -> ProviderSettings:
    if not isinstance(table, dict):
        raise ProviderFileError(
            f"{where}: provider {slug!r}: declare it as a [provider.{slug}] table"
        )
    if "client_secret" in table:
        raise ProviderFileError(
            f"{where}: provider {slug!r}: client_secret: secrets are not written in this file; "
            "name the environment variable holding it with client_secret_env"
        )
    try:
        entry = ProviderEntry.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'table'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ProviderFileError(f"{where}: provider {slug!r}: {problems}") from exc
    if entry.auth_method != PRIVATE_KEY_JWT and not entry.client_secret_env:
        raise ProviderFileError(
            f"{where}: provider {slug!r}: client_secret_env: required with auth_method "
            f'{entry.auth_method!r} (or use auth_method = "private_key_jwt")'
        )
    try:
        return checked_settings(
            slug=slug,
            issuer=entry.issuer,
            client_id=entry.client_id,
            display_name=entry.display_name,
            token_endpoint_auth_method=entry.auth_method,
            scopes=_words(entry.scopes),
            enabled=entry.enabled,
            jit=entry.jit,
            client_secret_env=entry.client_secret_env,
            allowed_email_domains=entry.allowed_email_domains,
            required_claims=entry.required_claims,
            scope_claim=entry.scope_claim,
            scope_map={value: _words(scopes) or "" for value, scopes in entry.scope_map.items()},
        )
    except ProviderConfigError as exc:
        raise ProviderFileError(f"{where}: provider {slug!r}: {exc.field}: {exc}") from exc


def parse_providers(
    text: str, where: str, *, as_json: bool = False
) -> tuple[ProviderSettings, ...]:
    """The providers ``text`` declares (``where`` names it in errors); raises
    :class:`ProviderFileError`."""
    try:
        document: Any = json.loads(text) if as_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if as_json else "TOML"
        raise ProviderFileError(f"{where} is not valid {kind}: {exc}") from exc
    if not isinstance(document, dict) or set(document) - {"provider"}:
        raise ProviderFileError(f"{where}: declare providers as [provider.SLUG] tables only")
    tables = document.get("provider", {})
    if not isinstance(tables, dict):
        raise ProviderFileError(f"{where}: declare providers as [provider.SLUG] tables only")
    providers = tuple(_entry(where, slug, table) for slug, table in tables.items())
    issuers: dict[str, str] = {}
    for provider in providers:
        other = issuers.setdefault(provider.issuer, provider.slug)
        if other != provider.slug:
            raise ProviderFileError(
                f"{where}: provider {provider.slug!r}: issuer: already the issuer of {other!r}"
            )
    return providers


def load_provider_file(
    path: Path, environ: Mapping[str, str] = os.environ
) -> tuple[ProviderSettings, ...]:
    """The providers the file at ``path`` declares, each client secret's variable set in
    ``environ``; raises :class:`ProviderFileError`."""
    where = f"the identity providers file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProviderFileError(f"cannot read {where}: {exc.strerror}") from exc
    providers = parse_providers(text, where, as_json=path.suffix.lower() == ".json")
    for provider in providers:
        variable = provider.client_secret_env
        if variable and not environ.get(variable):
            raise ProviderFileError(
                f"{where}: provider {provider.slug!r}: client_secret_env: the environment "
                f"variable {variable} is not set"
            )
    return providers


@dataclass
class Applied:
    """What applying the file changed, by slug."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


def apply_providers(
    server: AuthServer, providers: tuple[ProviderSettings, ...], where: str = "the file"
) -> Applied:
    """Make the database's file-managed providers those of ``providers`` (one transaction;
    another host applying the same file at once only costs a retry)."""
    try:
        return _apply(server, providers, where)
    except IntegrityError:
        return _apply(server, providers, where)


def _apply(server: AuthServer, providers: tuple[ProviderSettings, ...], where: str) -> Applied:
    applied = Applied()
    now = server.now()
    with server.database.transaction() as session:
        rows = {row.slug: row for row in session.scalars(select(IdentityProvider))}
        for provider in providers:
            row = rows.get(provider.slug)
            _refuse_clash(rows, provider, where)
            if row is None:
                session.add(_new_row(server, provider, now))
                applied.created.append(provider.slug)
            elif _update_row(server, row, provider, now):
                applied.updated.append(provider.slug)
            else:
                continue
            event = "idp_created" if row is None else "idp_updated"
            record_event(session, event, at=now, actor="file", provider=provider.slug)
        declared = {provider.slug for provider in providers}
        for row in rows.values():
            if row.source == FROM_FILE and row.slug not in declared:
                row.enabled, row.source, row.updated_at = False, DROPPED_FROM_FILE, now
                record_event(session, "idp_disabled", at=now, actor="file", provider=row.slug)
                applied.disabled.append(row.slug)
        session.flush()
    return applied


def _refuse_clash(
    rows: dict[str, IdentityProvider], provider: ProviderSettings, where: str
) -> None:
    row = rows.get(provider.slug)
    if row is not None and row.source == FROM_CLI:
        raise ProviderFileError(
            f"{where}: provider {provider.slug!r}: slug: exists already, added with `charter "
            "idps add`; remove it there (`charter idps remove`) or pick another slug"
        )
    for other in rows.values():
        if other.slug != provider.slug and other.issuer == provider.issuer:
            raise ProviderFileError(
                f"{where}: provider {provider.slug!r}: issuer: already the issuer of provider "
                f"{other.slug!r} (from {other.source})"
            )


def _new_row(server: AuthServer, provider: ProviderSettings, now: int) -> IdentityProvider:
    key = None
    if provider.token_endpoint_auth_method == PRIVATE_KEY_JWT:
        key, _public = new_client_key(server.keys)
    return IdentityProvider(
        id=new_id(),
        **provider.columns(),
        client_secret_encrypted=None,
        client_key_encrypted=key,
        source=FROM_FILE,
        created_at=now,
        updated_at=now,
    )


def _update_row(
    server: AuthServer, row: IdentityProvider, provider: ProviderSettings, now: int
) -> bool:
    """Give ``row`` the file's settings; whether anything changed."""
    wanted: dict[str, Any] = {
        **provider.columns(),
        "source": FROM_FILE,
        "client_secret_encrypted": None,
    }
    changed = {key: value for key, value in wanted.items() if getattr(row, key) != value}
    for key, value in changed.items():
        setattr(row, key, value)
    if row.token_endpoint_auth_method == PRIVATE_KEY_JWT and not row.client_key_encrypted:
        row.client_key_encrypted, _public = new_client_key(server.keys)
        changed["client_key_encrypted"] = True
    if changed:
        row.updated_at = now
    return bool(changed)
