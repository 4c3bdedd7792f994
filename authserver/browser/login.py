"""Browser login: password check with throttling, and login sessions (RFC 9700 §4.4, S51).

The login cookie and the browser-binding cookie are set by :mod:`authserver.browser.cookies`;
login sessions are stored only as hashes. Throttling (S20) uses shared SQL
counters and never locks a user out from elsewhere:

- every attempt is counted first (hit-then-check, so parallel guesses cannot slip past the limit)
  per client IP and per username+IP; past either limit the form answers 429 whatever the
  password. A successful login gives its attempt back, so only failures use up the budget;
- failures are also counted per username across all IPs; past that limit a wrong password
  answers 429 (after the same password verification), but the right password still logs in.
  Someone guessing ``admin``'s password from one IP cannot keep ``admin`` out from another.

User names are looked up, and counted, by their folded key
(:func:`authserver.accounts.users.username_key`): ``Admin``, `` admin `` and ``admin`` in
full-width letters are one user. A user whose password is a one-time password
(``must_change_password``) gets no login session from the right password: :func:`log_in` answers
:class:`PasswordChangeRequired` and the login form continues to the change page
(:mod:`authserver.browser.password_change`); only the change establishes the login.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.accounts.passwords import MAX_PASSWORD_LENGTH
from authserver.accounts.users import find_user_by_name, username_key
from authserver.context import AuthServer
from authserver.storage import rate_limits
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_token
from authserver.storage.models import LoginSession, RateCounter, User

#: Failed-login counting window, seconds.
FAILED_LOGIN_WINDOW = 300
#: A client IP may fail this many times more often than one username (shared NATs).
IP_LIMIT_FACTOR = 5


@dataclass(frozen=True)
class LoggedIn:
    """A valid login: the user and the hash of the session cookie."""

    user: User
    session_hash: str


def current_login(
    session: Session, server: AuthServer, cookie_value: str | None
) -> LoggedIn | None:
    """The login behind ``cookie_value`` when unexpired and its user enabled."""
    if cookie_value is None:
        return None
    session_hash = hash_token(cookie_value)
    row = session.get(LoginSession, session_hash)
    if row is None or row.expires_at <= server.now():
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled or user.must_change_password:
        return None
    if user.password_changed_at > row.created_at:
        return None
    return LoggedIn(user, session_hash)


def create_login_session(session: Session, server: AuthServer, user_id: str) -> str:
    """Start a login; returns the cookie value (only its hash is stored)."""
    value = new_token()
    now = server.now()
    session.add(
        LoginSession(
            id_hash=hash_token(value),
            user_id=user_id,
            created_at=now,
            expires_at=now + server.settings.login_session_ttl,
        )
    )
    return value


@dataclass(frozen=True)
class LoginSucceeded:
    """The user and the new session cookie value."""

    user_id: str
    cookie_value: str


@dataclass(frozen=True)
class PasswordChangeRequired:
    """The right one-time password: no login yet, the user must choose a new password first."""

    user_id: str


@dataclass(frozen=True)
class LoginFailed:
    """Wrong username or password (not said which)."""


@dataclass(frozen=True)
class LoginThrottled:
    """Too many failures; retry after this many seconds."""

    retry_after: int


LoginOutcome = LoginSucceeded | PasswordChangeRequired | LoginFailed | LoginThrottled


@dataclass(frozen=True)
class _LimitKeys:
    """The counters of one login attempt (usernames hashed: they may be long or hostile)."""

    user: str
    ip: str
    pair: str

    @classmethod
    def of(cls, username: str, ip: str) -> _LimitKeys:
        name = hash_token(username_key(username))
        return cls(f"login:user:{name}", f"login:ip:{ip}", f"login:user-ip:{name}:{ip}")


def _give_back(session: Session, key: str, *, counted_at: int, window: int) -> None:
    """Undo one count of ``key`` made at ``counted_at`` (a success should not use the budget)."""
    row = session.scalars(
        select(RateCounter)
        .where(RateCounter.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if row is not None and row.window_start == counted_at - counted_at % window and row.count > 0:
        row.count -= 1


def log_in(
    server: AuthServer, username: str, password: str, ip: str, client_id: str | None
) -> LoginOutcome:
    """Check a username and password (blocking; run in a thread).

    The username is compared by its folded key. Unknown users cost the same argon2 verification
    as known ones, and a username over its failure limit costs it too (its answer then depends
    on the password). The hash is verified outside any transaction so that SQLite's writer lock
    is not held during it. A one-time password answers :class:`PasswordChangeRequired`.
    """
    limit = server.settings.failed_auth_limit
    ip_limit = limit * IP_LIMIT_FACTOR
    keys = _LimitKeys.of(username, ip)
    counted_at = server.now()
    with server.database.transaction() as session:
        wait = max(
            rate_limits.hit(
                session, keys.pair, now=counted_at, window=FAILED_LOGIN_WINDOW, limit=limit
            ),
            rate_limits.hit(
                session, keys.ip, now=counted_at, window=FAILED_LOGIN_WINDOW, limit=ip_limit
            ),
        )
        if wait:
            record_event(session, "login_throttled", at=counted_at, client_id=client_id, ip=ip)
            return LoginThrottled(wait)
        user = find_user_by_name(session, username)
        stored_hash = user.password_hash if user is not None and not user.disabled else None
        user_id = user.id if user is not None else None
        must_change = user is not None and user.must_change_password
    candidate = password if len(password) <= MAX_PASSWORD_LENGTH else ""
    verified = server.passwords.verify(stored_hash, candidate) and bool(candidate)
    now = server.now()
    with server.database.transaction() as session:
        if verified and user_id is not None:
            rate_limits.reset(session, keys.pair)
            rate_limits.reset(session, keys.user)
            _give_back(session, keys.ip, counted_at=counted_at, window=FAILED_LOGIN_WINDOW)
            if must_change:
                record_event(
                    session,
                    "login_password_change_required",
                    at=now,
                    client_id=client_id,
                    subject=user_id,
                    ip=ip,
                )
                return PasswordChangeRequired(user_id)
            cookie_value = create_login_session(session, server, user_id)
            record_event(
                session, "login_succeeded", at=now, client_id=client_id, subject=user_id, ip=ip
            )
            return LoginSucceeded(user_id, cookie_value)
        wait = rate_limits.hit(session, keys.user, now=now, window=FAILED_LOGIN_WINDOW, limit=limit)
        record_event(session, "login_failed", at=now, client_id=client_id, subject=user_id, ip=ip)
        if wait:
            record_event(session, "login_throttled", at=now, client_id=client_id, ip=ip)
            return LoginThrottled(wait)
        return LoginFailed()
