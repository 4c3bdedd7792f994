"""Pending authorization requests and authorization codes (RFC 6749 §4.1.2, RFC 7636 §4.4,
RFC 9700 §4.5, S17, S18).

A validated request waits in SQL (any worker may continue it) while the user logs in and
consents. The browser holds its id, and each form a CSRF token; both are stored hashed, and the
row is bound to the browser-binding cookie of the browser that started it. Approval turns it
into an :class:`AuthorizationCode` row, deleted-on-use by the token endpoint's atomic redeem.

Anyone can start requests without logging in, so new ones are rate limited per client IP
(IPv6 per /64) by ``authorize_rate_per_minute``, which bounds the rows one IP can keep alive.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.federation.accounts import user_scope_limit
from authserver.federation.providers import limited_scope
from authserver.oauth.authorization_request import AuthorizationRequest
from authserver.storage import rate_limits
from authserver.storage.crypto import hash_token, new_token, token_matches
from authserver.storage.models import AuthorizationCode, PendingAuthorization

#: How long a user may take to log in and consent, seconds.
PENDING_TTL = 1800
#: Window of the new-pending-request counter (``authorize_rate_per_minute``), seconds.
PENDING_RATE_WINDOW = 60


@dataclass(frozen=True)
class RequestTerms:
    """What an approval binds the code to."""

    client_id: str
    redirect_uri: str
    registered_redirect_uri: str
    redirect_uri_sent: bool
    scope: str
    resource: str
    state: str | None
    code_challenge: str

    @classmethod
    def from_request(cls, request: AuthorizationRequest) -> RequestTerms:
        """Terms of a freshly validated request."""
        return cls(
            client_id=request.client.client_id,
            redirect_uri=request.redirect.redirect_uri,
            registered_redirect_uri=request.redirect.registered,
            redirect_uri_sent=request.redirect.sent,
            scope=request.scope,
            resource=request.resource,
            state=request.state,
            code_challenge=request.code_challenge,
        )

    @classmethod
    def from_pending(cls, row: PendingAuthorization) -> RequestTerms:
        """Terms of a stored request."""
        return cls(
            client_id=row.client_id,
            redirect_uri=row.redirect_uri,
            registered_redirect_uri=row.registered_redirect_uri,
            redirect_uri_sent=row.redirect_uri_sent,
            scope=row.scope,
            resource=row.resource,
            state=row.state,
            code_challenge=row.code_challenge,
        )


def pending_rate_key(ip: str) -> str:
    """The counter of ``ip``: IPv6 addresses share one per /64 (what one host usually has)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"pending:ip:{ip[:128]}"
    if address.version == 6:
        network = ipaddress.ip_network(f"{address}/64", strict=False)
        return f"pending:ip:{network}"
    return f"pending:ip:{address}"


def count_new_pending(session: Session, server: AuthServer, ip: str) -> int:
    """Count a new pending request from ``ip``; seconds to wait when over the limit, else 0."""
    return rate_limits.hit(
        session,
        pending_rate_key(ip),
        now=server.now(),
        window=PENDING_RATE_WINDOW,
        limit=server.settings.authorize_rate_per_minute,
    )


def store_pending(
    session: Session,
    server: AuthServer,
    terms: RequestTerms,
    browser_value: str,
    *,
    fresh_login: bool = False,
    fresh_consent: bool = False,
) -> tuple[str, str]:
    """Store a request for ``browser_value``'s browser; returns its id and a CSRF token.

    ``fresh_login`` (``prompt=login``): only a login made on this request's own login form
    may approve it (see :func:`login_is_fresh_enough`). ``fresh_consent`` (``prompt=consent``):
    the consent page is shown even when a remembered consent covers the request.
    """
    request_id = new_token()
    csrf_token = new_token()
    now = server.now()
    session.add(
        PendingAuthorization(
            id_hash=hash_token(request_id),
            client_id=terms.client_id,
            redirect_uri=terms.redirect_uri,
            registered_redirect_uri=terms.registered_redirect_uri,
            redirect_uri_sent=terms.redirect_uri_sent,
            scope=terms.scope,
            resource=terms.resource,
            state=terms.state,
            code_challenge=terms.code_challenge,
            browser_hash=hash_token(browser_value),
            csrf_hash=hash_token(csrf_token),
            user_id=None,
            login_session_hash=None,
            fresh_login_required=fresh_login,
            fresh_consent_required=fresh_consent,
            created_at=now,
            expires_at=now + PENDING_TTL,
        )
    )
    return request_id, csrf_token


def load_pending(
    session: Session, server: AuthServer, request_id: str | None, browser_value: str | None
) -> PendingAuthorization | None:
    """The unexpired request ``request_id`` started by this browser, or None; its row stays
    locked for the rest of the transaction."""
    if not request_id or not browser_value or len(request_id) > 128:
        return None
    # Locked until commit: parallel posts of one request (approve, sign in, change password)
    # run one after the other, and the later ones find it consumed (S99).
    row = session.get(PendingAuthorization, hash_token(request_id), with_for_update=True)
    if row is None or row.expires_at <= server.now():
        return None
    if not token_matches(browser_value, row.browser_hash):
        return None
    return row


def bind_fresh_login(row: PendingAuthorization, user_id: str, login_session_hash: str) -> None:
    """Record the login just made on ``row``'s own login form."""
    row.user_id = user_id
    row.login_session_hash = login_session_hash


def login_is_fresh_enough(row: PendingAuthorization, login_session_hash: str) -> bool:
    """Whether a login session may continue ``row``.

    Any valid login may, unless ``prompt=login`` was asked: then only the session created by
    this request's login form (bound with :func:`bind_fresh_login`), never an older one.
    """
    if not row.fresh_login_required:
        return True
    return row.login_session_hash is not None and hmac.compare_digest(
        login_session_hash, row.login_session_hash
    )


def rotate_csrf(row: PendingAuthorization) -> str:
    """A new CSRF token for the next form of ``row`` (the old one stops working)."""
    token = new_token()
    row.csrf_hash = hash_token(token)
    return token


def csrf_matches(row: PendingAuthorization, token: str | None) -> bool:
    """Constant-time check of a posted CSRF token (S51)."""
    if not token:
        return False
    return token_matches(token, row.csrf_hash)


def issue_code(session: Session, server: AuthServer, terms: RequestTerms, user_id: str) -> str:
    """Create the authorization code row; returns the code (only its hash is stored).

    A user signed in through an upstream provider whose claim mapping limits the scopes they
    may grant gets no code carrying others (:func:`user_scope_limit`, S79).
    """
    code = new_token()
    now = server.now()
    scope = limited_scope(terms.scope, user_scope_limit(session, user_id))
    session.add(
        AuthorizationCode(
            code_hash=hash_token(code),
            client_id=terms.client_id,
            subject=user_id,
            redirect_uri=terms.redirect_uri,
            redirect_uri_sent=terms.redirect_uri_sent,
            scope=scope,
            resource=terms.resource,
            code_challenge=terms.code_challenge,
            code_challenge_method="S256",
            created_at=now,
            expires_at=now + server.settings.authorization_code_ttl,
            consumed_at=None,
        )
    )
    return code
