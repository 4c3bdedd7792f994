"""Remembered consent and what the consent page shows (RFC 9700 §4.1.1, §4.4; MCP security
best practices "confused deputy"; S51, S54, S55).

A consent is remembered per user, client, resource and registered redirect URI, and covers the
scopes approved; a later request for a subset of them skips the page until ``consent_ttl``
passes, unless it asks ``prompt=consent`` (then the page is shown, and denying there leaves the
remembered consent in place). It is keyed by ``client_id``, so every new client — even one
with the same name and redirect URIs — is asked for again (S54).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.oauth.redirects import display_host, is_loopback_redirect
from authserver.oauth.scopes import parse_scope
from authserver.storage.crypto import new_id
from authserver.storage.models import Client, Consent

SCOPE_DESCRIPTIONS = {
    "mcp": "Use the tools, resources and prompts of this MCP server on your behalf",
    "notes:read": "Read your notes",
    "notes:write": "Create, change and delete your notes",
}


def find_consent(
    session: Session,
    server: AuthServer,
    *,
    user_id: str,
    client_id: str,
    scope: str,
    resource: str,
    redirect_uri: str,
) -> Consent | None:
    """An unexpired, unrevoked consent covering every scope in ``scope``, or None."""
    if server.settings.consent_ttl <= 0:
        return None
    wanted = set(parse_scope(scope))
    rows = session.scalars(
        select(Consent).where(
            Consent.user_id == user_id,
            Consent.client_id == client_id,
            Consent.resource == resource,
            Consent.redirect_uri == redirect_uri,
            Consent.revoked_at.is_(None),
            Consent.expires_at > server.now(),
        )
    )
    for row in rows:
        if wanted <= set(parse_scope(row.scope)):
            return row
    return None


def remember_consent(
    session: Session,
    server: AuthServer,
    *,
    user_id: str,
    client_id: str,
    scope: str,
    resource: str,
    redirect_uri: str,
) -> None:
    """Store an approval (nothing when ``consent_ttl`` is 0)."""
    if server.settings.consent_ttl <= 0:
        return
    now = server.now()
    session.add(
        Consent(
            id=new_id(),
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            resource=resource,
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + server.settings.consent_ttl,
            revoked_at=None,
        )
    )


def has_any_consent(session: Session, server: AuthServer, user_id: str, client_id: str) -> bool:
    """True when the user has an unexpired consent for this client (any scope)."""
    row = session.scalars(
        select(Consent.id).where(
            Consent.user_id == user_id,
            Consent.client_id == client_id,
            Consent.revoked_at.is_(None),
            Consent.expires_at > server.now(),
        )
    ).first()
    return row is not None


@dataclass(frozen=True)
class ScopeLine:
    """One scope on the consent page."""

    name: str
    description: str


@dataclass(frozen=True)
class ConsentView:
    """Everything the consent page shows (the template escapes it all)."""

    client_name: str
    client_id: str
    redirect_host: str
    localhost_only: bool
    scopes: list[ScopeLine]
    resource: str
    #: The name of the MCP server being authorised (the deployment may serve several).
    resource_name: str = ""


def consent_view(
    client: Client, scope: str, resource: str, redirect_uri: str, resource_name: str = ""
) -> ConsentView:
    """The consent page's content; logos are never shown (no hot-linking, S55)."""
    redirects = list(client.redirect_uris or [])
    return ConsentView(
        client_name=(client.client_name or "").strip() or "An unnamed application",
        client_id=client.client_id,
        redirect_host=display_host(redirect_uri),
        localhost_only=bool(redirects) and all(is_loopback_redirect(uri) for uri in redirects),
        scopes=[ScopeLine(name, SCOPE_DESCRIPTIONS.get(name, name)) for name in parse_scope(scope)],
        resource=resource,
        resource_name=resource_name,
    )
