"""The consent page of a pending request: ``GET``/``POST /authorize/consent`` (RFC 6749 §4.1.1
user approval; RFC 9700 §4.4; S51, S53, S54).

``GET ?request_id=…`` shows the page to the signed-in browser that started the request (the
login form when nobody is signed in, or when ``prompt=login`` asked for a login made on this
request). ``POST`` takes ``request_id``, ``csrf_token`` and ``decision=approve|deny``; the form
belongs to the login it was shown to. Both decisions answer 303 to the client: a code, or
``error=access_denied``. Approving remembers the consent; denying refuses this request only.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.responses import Response

from authserver.browser.approval import error_url, issue, issue_if_remembered
from authserver.browser.consent import remember_consent
from authserver.browser.forms import Form, single
from authserver.browser.login import LoggedIn, current_login
from authserver.browser.pages import Pages, client_for_display, error_page, person_label, redirect
from authserver.browser.pending import (
    RequestTerms,
    csrf_matches,
    load_pending,
    login_is_fresh_enough,
    rotate_csrf,
)
from authserver.context import AuthServer
from authserver.storage.audit import record_event
from authserver.storage.models import PendingAuthorization


class ConsentForm:
    """The blocking parts of the consent page (run in a thread: SQL, client lookup)."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.pages = Pages(server)

    def show(
        self, request_id: str | None, browser_value: str | None, session_cookie: str | None, ip: str
    ) -> Response:
        """The consent page of a pending request (the login page when not logged in)."""
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None:
                return self.pages.expired()
            terms = RequestTerms.from_pending(row)
            login = current_login(session, self.server, session_cookie)
            if login is not None and not login_is_fresh_enough(row, login.session_hash):
                login = None  # prompt=login: an older login session must sign in again
            if login is not None:
                location = issue_if_remembered(session, self.server, terms, login.user.id, ip, row)
                if location is not None:
                    session.delete(row)
                    return redirect(location, status_code=302)
                row.user_id = login.user.id
                row.login_session_hash = login.session_hash
            csrf_token = rotate_csrf(row)
        assert request_id is not None  # noqa: S101 - load_pending needs it
        name, client = client_for_display(self.server, terms.client_id)
        if client is None:
            return error_page(self.server, "invalid_client", "This application is no longer known.")
        if login is None:
            return self.pages.login(request_id, csrf_token, terms, name)
        return self.pages.consent(request_id, csrf_token, terms, client, person_label(login.user))

    def decide(
        self, form: Form, browser_value: str | None, session_cookie: str | None, ip: str
    ) -> Response:
        """Approve or deny; both answer with a 303 to the client (S53)."""
        decision = single(form, "decision")
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, single(form, "request_id"), browser_value)
            if row is None:
                return self.pages.expired()
            if not csrf_matches(row, single(form, "csrf_token")):
                return self.pages.csrf_failed()
            login = current_login(session, self.server, session_cookie)
            if login is None or not _bound_to(row, login):
                return self.pages.csrf_failed()
            if decision == "approve":
                return self._approve(session, row, login.user.id, ip)
            if decision == "deny":
                return self._deny(session, row, login.user.id, ip)
        return error_page(self.server, "invalid_request", "decision must be approve or deny.")

    def _approve(
        self, session: Session, row: PendingAuthorization, user_id: str, ip: str
    ) -> Response:
        """Remember the consent and send the code."""
        terms = RequestTerms.from_pending(row)
        remember_consent(
            session,
            self.server,
            user_id=user_id,
            client_id=terms.client_id,
            scope=terms.scope,
            resource=terms.resource,
            redirect_uri=terms.registered_redirect_uri,
        )
        record_event(
            session,
            "consent_granted",
            at=self.server.now(),
            client_id=terms.client_id,
            subject=user_id,
            ip=ip,
            scope=terms.scope,
            resource=terms.resource,
        )
        session.delete(row)
        return redirect(issue(session, self.server, terms, user_id, ip), status_code=303)

    def _deny(self, session: Session, row: PendingAuthorization, user_id: str, ip: str) -> Response:
        """Refuse this request only (a consent remembered earlier stays)."""
        terms = RequestTerms.from_pending(row)
        record_event(
            session,
            "consent_denied",
            at=self.server.now(),
            client_id=terms.client_id,
            subject=user_id,
            ip=ip,
        )
        session.delete(row)
        url = error_url(
            self.server,
            terms.redirect_uri,
            "access_denied",
            "The user denied the request.",
            terms.state,
        )
        return redirect(url, status_code=303)


def _bound_to(row: PendingAuthorization, login: LoggedIn) -> bool:
    """The consent form belongs to the login it was shown to (S51)."""
    return (
        row.user_id == login.user.id
        and row.login_session_hash == login.session_hash
        and login_is_fresh_enough(row, login.session_hash)
    )
