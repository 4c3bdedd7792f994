"""Answering the client once the user is known (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207; RFC 9700
§4.1.1).

A consent remembered for the request's client, scope, resource and redirect URI issues the
authorization code at once (unless the request asked ``prompt=consent``); otherwise the consent
page comes next. Success and error responses carry ``state`` and ``iss``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.responses import Response

from authserver.browser.consent import find_consent
from authserver.browser.pages import CONSENT_PATH, Pages, redirect
from authserver.browser.pending import RequestTerms, bind_fresh_login, issue_code
from authserver.context import AuthServer
from authserver.oauth.redirects import response_url
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token
from authserver.storage.models import PendingAuthorization


def success_url(server: AuthServer, terms: RequestTerms, code: str) -> str:
    """The redirect carrying ``code`` back to the client."""
    return response_url(
        terms.redirect_uri, {"code": code, "state": terms.state, "iss": server.settings.issuer}
    )


def error_url(
    server: AuthServer, redirect_uri: str, error: str, description: str, state: str | None
) -> str:
    """The redirect carrying an error back to the client."""
    return response_url(
        redirect_uri,
        {
            "error": error,
            "error_description": description or None,
            "state": state,
            "iss": server.settings.issuer,
        },
    )


def issue(session: Session, server: AuthServer, terms: RequestTerms, user_id: str, ip: str) -> str:
    """Issue the code of an approved request (audited); the success URL."""
    code = issue_code(session, server, terms, user_id)
    record_event(
        session,
        "code_issued",
        at=server.now(),
        client_id=terms.client_id,
        subject=user_id,
        ip=ip,
        scope=terms.scope,
        resource=terms.resource,
    )
    return success_url(server, terms, code)


def issue_if_remembered(
    session: Session,
    server: AuthServer,
    terms: RequestTerms,
    user_id: str,
    ip: str,
    row: PendingAuthorization | None = None,
) -> str | None:
    """When consent is remembered: issue a code and return the success URL.

    Never for a pending ``row`` that asked ``prompt=consent`` (the page must be shown).
    """
    if row is not None and row.fresh_consent_required:
        return None
    consent = find_consent(
        session,
        server,
        user_id=user_id,
        client_id=terms.client_id,
        scope=terms.scope,
        resource=terms.resource,
        redirect_uri=terms.registered_redirect_uri,
    )
    if consent is None:
        return None
    return issue(session, server, terms, user_id, ip)


def continue_after_login(
    session: Session,
    pages: Pages,
    row: PendingAuthorization,
    request_id: str,
    user_id: str,
    cookie_value: str,
    ip: str,
) -> Response:
    """Continue ``row`` with the login just made for it: a 303 to the client (consent
    remembered) or to the consent page."""
    terms = RequestTerms.from_pending(row)
    bind_fresh_login(row, user_id, hash_token(cookie_value))
    location = issue_if_remembered(session, pages.server, terms, user_id, ip, row)
    if location is not None:
        session.delete(row)
        return redirect(location, status_code=303)
    return redirect(pages.request_location(CONSENT_PATH, request_id), status_code=303)
