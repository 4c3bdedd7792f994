"""Access and refresh tokens: RFC 9068 JWT access tokens, opaque hashed refresh tokens.

* Access tokens are JWTs (RFC 9068 §2) with header ``{"typ": "at+jwt", "alg": "ES256", "kid"}``
  and claims ``iss``, ``sub``, ``aud`` (the canonical resource, RFC 8707), ``client_id``,
  ``scope``, ``jti``, ``iat``, ``nbf``, ``exp``, and for a user ``preferred_username`` (and
  ``name`` when known) so that resource servers can show whom they serve. One
  :class:`AccessToken` row per ``jti`` lets them be revoked (RFC 7009 §2) and listed by grant.
* Refresh tokens are random strings (:func:`authserver.storage.crypto.new_token`) stored as SHA-256;
  each row is one link of its grant's rotation chain (RFC 9700 §4.14.2).
* :class:`AccessTokenRevocationView` tells the resource server which ``jti`` were revoked,
  from a set refreshed at most every few seconds, so the MCP hot path never queries per call.

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authserver.context import AuthServer
from authserver.oauth.jwt_signer import AccessTokenSigner
from authserver.storage.crypto import hash_token, new_id, new_token
from authserver.storage.models import AccessToken, Grant, User
from authserver.storage.signing_keys import SIGNING_ALG
from authserver.storage.token_rows import insert_access_token, insert_refresh_token

logger = logging.getLogger("charter.tokens")

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type
#: Longest string treated as a possible access token (anything longer is refused unparsed).
MAX_TOKEN_LENGTH = 8192


class IssuingGrant(Protocol):
    """What issuing needs of a grant: a :class:`Grant` row, or its state read under its lock
    (:class:`authserver.storage.token_rows.GrantState`)."""

    @property
    def id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def expires_at(self) -> int: ...


@dataclass(frozen=True)
class IssuedAccessToken:
    """A signed access token and what the token response says about it."""

    token: str
    jti: str
    expires_in: int


def issue_access_token(
    server: AuthServer,
    session: Session,
    key: ECKey,
    *,
    grant_id: str | None,
    client_id: str,
    subject: str,
    scope: str,
    resource: str,
    now: int,
    person: dict[str, str] | None = None,
) -> IssuedAccessToken:
    """Sign an RFC 9068 access token with ``key`` and record its ``jti``.

    ``resource`` must already be canonical and non-empty: no token without an audience (S30).
    ``person``: the subject's :func:`person_claims` when the caller has read them in this
    transaction already; read here otherwise.
    """
    issued = sign_access_token(
        server,
        key,
        jti=new_id(),
        client_id=client_id,
        subject=subject,
        scope=scope,
        resource=resource,
        now=now,
        person=person_claims(session, subject) if person is None else person,
    )
    insert_access_token(
        session,
        {
            "jti": issued.jti,
            "grant_id": grant_id,
            "client_id": client_id,
            "subject": subject,
            "scope": scope,
            "resource": resource,
            "issued_at": now,
            "expires_at": now + issued.expires_in,
            "revoked_at": None,
        },
    )
    return issued


def sign_access_token(
    server: AuthServer,
    key: ECKey,
    *,
    jti: str,
    client_id: str,
    subject: str,
    scope: str,
    resource: str,
    now: int,
    person: dict[str, str],
) -> IssuedAccessToken:
    """Sign the RFC 9068 access token ``jti`` with ``key``; its record is the caller's to
    store (:func:`issue_access_token` does both). It expires ``access_token_ttl`` after
    ``now``."""
    if not resource:
        raise ValueError("an access token needs an audience")
    ttl = server.settings.access_token_ttl
    claims: dict[str, Any] = {
        "iss": server.settings.issuer,
        "sub": subject,
        "aud": resource,
        "client_id": client_id,
        "scope": scope,
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    claims.update(person)
    return IssuedAccessToken(token=signer_for(key).sign(claims), jti=jti, expires_in=ttl)


#: The signer of the key that signed last (the key store hands out one key object for a while).
_last_signer: AccessTokenSigner | None = None


def signer_for(key: ECKey) -> AccessTokenSigner:
    """The :class:`AccessTokenSigner` of ``key`` (made again only when the key object changes)."""
    global _last_signer
    signer = _last_signer
    if signer is None or signer.key is not key:
        signer = _last_signer = AccessTokenSigner(key, ACCESS_TOKEN_TYPE)
    return signer


def person_claims(session: Session, subject: str) -> dict[str, str]:
    """``preferred_username`` and ``name`` (OpenID Connect Core §5.1) of the user ``subject``,
    for display by resource servers (none when the subject is a client)."""
    user = session.get(User, subject)
    if user is None:
        return {}
    return claims_of_person(user.username, user.display_name)


def claims_of_person(username: str | None, display_name: str | None) -> dict[str, str]:
    """The person claims of a user called ``username`` (none when there is no such user)."""
    if username is None:
        return {}
    claims = {"preferred_username": username}
    if display_name:
        claims["name"] = display_name
    return claims


def issue_refresh_token(
    server: AuthServer, session: Session, grant: IssuingGrant, *, now: int
) -> str:
    """A new refresh token of ``grant`` (idle expiry capped by the grant's absolute expiry)."""
    token = new_token()
    insert_refresh_token(
        session,
        {
            "token_hash": hash_token(token),
            "grant_id": grant.id,
            "client_id": grant.client_id,
            "subject": grant.subject,
            "scope": grant.scope,
            "resource": grant.resource,
            "issued_at": now,
            "expires_at": min(now + server.settings.refresh_token_idle_ttl, grant.expires_at),
            "rotated_at": None,
            "revoked_at": None,
        },
    )
    return token


def looks_like_jwt(token: str) -> bool:
    """True for a compact JWS shape (three dot-separated parts), e.g. an access token (S38)."""
    return token.count(".") == 2


def decode_access_token(server: AuthServer, token: str) -> dict[str, Any] | None:
    """The claims of an access token this server signed, or None.

    Checks the signature against the published keys, ``typ``, ``alg`` and ``iss``; expiry and
    revocation are the caller's business (introspection, revocation). Reads keys through the
    key store's own transaction: call it outside any open transaction.
    """
    if len(token) > MAX_TOKEN_LENGTH or not looks_like_jwt(token):
        return None
    try:
        keys = KeySet.import_key_set(server.keys.jwks())  # type: ignore[arg-type]
        decoded = jwt.decode(token, keys, algorithms=[SIGNING_ALG])
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    typ = str(decoded.header.get("typ", "")).lower()
    if typ not in (ACCESS_TOKEN_TYPE, "application/" + ACCESS_TOKEN_TYPE):
        return None
    claims = dict(decoded.claims)
    if claims.get("iss") != server.settings.issuer or not isinstance(claims.get("jti"), str):
        return None
    return claims


class AccessTokenRevocationView:
    """Which access tokens are revoked, for the resource server's hot path.

    Holds the set of revoked ``jti`` that have not expired yet. At most once per
    ``refresh_interval`` seconds one query fetches the rows revoked since the previous poll;
    between polls, :meth:`is_revoked` answers from memory.
    """

    def __init__(
        self,
        server: AuthServer,
        *,
        refresh_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._interval = refresh_interval
        self._monotonic = monotonic
        self._revoked: dict[str, int] = {}
        self._since: int | None = None
        self._polled_at: float | None = None
        self._lock = asyncio.Lock()

    async def is_revoked(self, jti: str) -> bool:
        """True when the access token ``jti`` or its whole grant was revoked.

        While the database is unreachable the last known set answers (S61: the resource server
        keeps validating); the next poll is tried after ``refresh_interval``.
        """
        if self._stale():
            async with self._lock:
                if self._stale():
                    try:
                        await run_in_threadpool(self._poll)
                    except DBAPIError as exc:
                        self._polled_at = self._monotonic()
                        logger.warning(
                            "revocation view not refreshed (%s); using the last known list",
                            type(exc).__name__,
                        )
        return jti in self._revoked

    def _stale(self) -> bool:
        return self._polled_at is None or self._monotonic() - self._polled_at >= self._interval

    def _poll(self) -> None:
        now = self._server.now()
        query = select(AccessToken.jti, AccessToken.expires_at).where(
            AccessToken.revoked_at.is_not(None), AccessToken.expires_at > now
        )
        # Overlap by the clock leeway: revocations stamped in the second of the last poll, or by
        # a worker whose clock runs a little behind, are still seen.
        overlap = max(2, self._server.settings.leeway_seconds)
        if self._since is not None:
            query = query.where(AccessToken.revoked_at >= self._since - overlap)
        # The tokens of revoked grants too, whatever their own row says (S95, defence in depth).
        of_revoked_grants = (
            select(AccessToken.jti, AccessToken.expires_at)
            .join(Grant, Grant.id == AccessToken.grant_id)
            .where(Grant.revoked_at.is_not(None), AccessToken.expires_at > now)
        )
        if self._since is not None:
            of_revoked_grants = of_revoked_grants.where(Grant.revoked_at >= self._since - overlap)
        with self._server.database.transaction() as session:
            rows = [*session.execute(query).all(), *session.execute(of_revoked_grants).all()]
        for jti, expires_at in rows:
            self._revoked[jti] = expires_at
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
        self._since = now
        self._polled_at = self._monotonic()
