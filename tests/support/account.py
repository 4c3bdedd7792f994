"""The signed-in user's own pages in process: a deployment app behind httpx, signing in on the
stand-alone sign-in page, and grant rows (with an access token and a consent) written straight
to the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import func, select

from authserver.context import AuthServer
from authserver.deployment import build_deployment
from authserver.storage.crypto import new_id
from authserver.storage.models import AccessToken, AuditEvent, Consent, Grant
from tests.support.browser_flow import HtmlForm, parse_forms

PASSWORD = "correct horse battery"
RESOURCE = "http://127.0.0.1:8000/mcp"


@asynccontextmanager
async def browser(server: AuthServer) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (cookie jar, no redirects followed) on the deployment's app."""
    app = build_deployment(server.settings, server=server).app
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=server.settings.issuer) as client:
        yield client


def form(page: httpx.Response, kind: str) -> HtmlForm:
    """The first ``data-form=kind`` form of the page."""
    forms = [each for each in parse_forms(page.text) if each.attrs.get("data-form") == kind]
    assert forms, f"no {kind} form on the page:\n{page.text[:3000]}"
    return forms[0]


def forms(page: httpx.Response, kind: str) -> list[HtmlForm]:
    """Every ``data-form=kind`` form of the page."""
    return [each for each in parse_forms(page.text) if each.attrs.get("data-form") == kind]


async def sign_in(
    client: httpx.AsyncClient, username: str, *, next_path: str = "/account/applications"
) -> httpx.Response:
    """Sign in on ``/account/sign-in``; the 303 back to ``next_path``."""
    page = await client.get("/account/sign-in", params={"next": next_path})
    assert page.status_code == 200, page.text
    fields = form(page, "account-sign-in").fields
    answer = await client.post(
        "/account/sign-in", data={**fields, "username": username, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_path
    return answer


def add_grant(
    server: AuthServer, user_id: str, client_id: str, scope: str = "mcp notes:read"
) -> tuple[str, str]:
    """A live grant of ``user_id`` to ``client_id`` with one access token and a consent; the
    grant id and the token's jti."""
    now = server.now()
    grant_id, jti = new_id(), new_id()
    with server.database.transaction() as session:
        session.add(
            Grant(
                id=grant_id,
                client_id=client_id,
                subject=user_id,
                scope=scope,
                resource=RESOURCE,
                grant_type="authorization_code",
                created_at=now - 60,
                expires_at=now + 86400,
            )
        )
        session.add(
            AccessToken(
                jti=jti,
                grant_id=grant_id,
                client_id=client_id,
                subject=user_id,
                scope=scope,
                resource=RESOURCE,
                issued_at=now - 30,
                expires_at=now + 3600,
            )
        )
        session.add(
            Consent(
                id=new_id(),
                user_id=user_id,
                client_id=client_id,
                scope=scope,
                resource=RESOURCE,
                redirect_uri="http://127.0.0.1/callback",
                created_at=now - 60,
                expires_at=now + 86400,
            )
        )
    return grant_id, jti


def live_grants(server: AuthServer, user_id: str, client_id: str | None = None) -> int:
    """Unrevoked grants of ``user_id`` (to ``client_id`` when given)."""
    query = (
        select(func.count())
        .select_from(Grant)
        .where(Grant.subject == user_id, Grant.revoked_at.is_(None))
    )
    if client_id is not None:
        query = query.where(Grant.client_id == client_id)
    with server.database.transaction() as session:
        return int(session.scalar(query) or 0)


def token_revoked(server: AuthServer, jti: str) -> bool:
    with server.database.transaction() as session:
        row = session.get(AccessToken, jti)
        assert row is not None
        return row.revoked_at is not None


def audit_rows(server: AuthServer, event: str) -> list[AuditEvent]:
    with server.database.transaction() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == event)))
