"""Typed SQLAlchemy models of the authorization server.

Times are integer Unix seconds (UTC) so that SQLite and PostgreSQL compare them alike.
Secrets, codes, refresh tokens, registration tokens and login sessions are stored only as
hashes (see :mod:`authserver.storage.crypto`). Every row that expires has an indexed ``expires_at``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the authorization server's tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


Base.metadata.naming_convention = NAMING_CONVENTION


class ClientKind:
    """The values of :attr:`Client.kind`: where a client came from."""

    #: Registered by itself (RFC 7591 dynamic client registration).
    DYNAMIC = "dynamic"
    #: An https ``client_id`` naming its client ID metadata document (cached here).
    METADATA_DOCUMENT = "metadata_document"
    #: Created by an administrator (``charter clients add``); only these may use
    #: ``client_credentials``.
    STATIC = "static"
    ALL = (DYNAMIC, METADATA_DOCUMENT, STATIC)


class Client(Base):
    """An OAuth client: dynamically registered, a metadata document, or static (admin-made)."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(2048), primary_key=True)
    #: One of :class:`ClientKind`.
    kind: Mapped[str] = mapped_column(String(32))
    client_name: Mapped[str | None] = mapped_column(String(256))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``none``, ``client_secret_basic`` or ``client_secret_post``.
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(64))
    #: Scopes this client may ask for (space-separated); empty = all supported scopes.
    scope: Mapped[str] = mapped_column(Text, default="")
    #: All registered metadata as returned to the client (no secrets).
    client_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: SHA-256 of the client secret (confidential clients only).
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    secret_expires_at: Mapped[int] = mapped_column(BigInteger, default=0)
    #: SHA-256 of the RFC 7592 registration access token.
    registration_token_hash: Mapped[str | None] = mapped_column(String(128))
    #: Hash of the normalised registration request, for idempotent re-registration.
    metadata_fingerprint: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    #: For metadata documents: when the cached document must be fetched again.
    expires_at: Mapped[int | None] = mapped_column(BigInteger, index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: IP address that registered the client (dynamic clients).
    registered_from: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A local user who logs in on the login page (names compare by ``username_key``)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The name as typed (trimmed), for display.
    username: Mapped[str] = mapped_column(String(128))
    #: The name trimmed, NFKC-normalized and case-folded
    #: (:func:`authserver.accounts.users.username_key`).
    username_key: Mapped[str] = mapped_column(String(512), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The password is a one-time password: the browser login asks for a new one first.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    #: Hash of the pending authorization request on which the one-time password was just
    #: verified, and until when its change page may set the new password.
    password_change_pending_hash: Mapped[str | None] = mapped_column(String(128))
    password_change_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    password_changed_at: Mapped[int] = mapped_column(BigInteger)
    #: The person's name for display (an upstream provider's ``name`` claim), if known.
    display_name: Mapped[str | None] = mapped_column(String(256))


class SigningKey(Base):
    """A JWS signing key (ES256). Published from ``created_at``; signs from ``activates_at``."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The private JWK, encrypted (JWE compact, dir + A256GCM) with the key-encryption key.
    private_jwk_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    activates_at: Mapped[int] = mapped_column(BigInteger)
    #: When it stopped signing (a newer key took over, or an admin retired it).
    retired_at: Mapped[int | None] = mapped_column(BigInteger)
    #: When it leaves the JWKS: retirement plus the longest token lifetime.
    expires_at: Mapped[int | None] = mapped_column(BigInteger, index=True)


class Grant(Base):
    """One authorization (a user's consent used by a client): the family of its tokens."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(2048), index=True)
    subject: Mapped[str] = mapped_column(String(256), index=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    #: ``authorization_code`` or ``client_credentials``.
    grant_type: Mapped[str] = mapped_column(String(64))
    #: Hash of the authorization code that started the grant (for replay revocation).
    code_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Absolute expiry of the grant's refresh tokens.
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_reason: Mapped[str | None] = mapped_column(String(128))


class AuthorizationCode(Base):
    """An authorization code (stored hashed), bound to client, redirect URI, PKCE and resource."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(2048))
    subject: Mapped[str] = mapped_column(String(256))
    redirect_uri: Mapped[str] = mapped_column(Text)
    #: True when the request carried ``redirect_uri`` (then the token request must repeat it).
    redirect_uri_sent: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    #: Set by the one atomic statement that redeems the code.
    consumed_at: Mapped[int | None] = mapped_column(BigInteger)


class AccessToken(Base):
    """One row per issued JWT access token (its ``jti``), kept until it expires."""

    __tablename__ = "access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(2048), index=True)
    subject: Mapped[str] = mapped_column(String(256), index=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, index=True)


class RefreshToken(Base):
    """An opaque refresh token (stored hashed), one link of its grant's rotation chain."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("grants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(String(2048))
    subject: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    issued_at: Mapped[int] = mapped_column(BigInteger)
    #: Idle expiry (the grant's absolute expiry also applies).
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    #: Set by the one atomic statement that rotates the token.
    rotated_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class Consent(Base):
    """A user's remembered approval of a client for scopes and a resource."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(2048), index=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class LoginSession(Base):
    """A browser login (cookie value stored hashed)."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class PendingAuthorization(Base):
    """A validated authorization request waiting for the user's login and consent.

    Kept server-side so any worker can continue it; the browser holds only its id (hashed here),
    a CSRF token (hashed here) and the browser-binding cookie (hashed here).
    """

    __tablename__ = "pending_authorizations"

    id_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(2048))
    #: The redirect URI the code goes to, and the registered entry it matched.
    redirect_uri: Mapped[str] = mapped_column(Text)
    registered_redirect_uri: Mapped[str] = mapped_column(Text)
    redirect_uri_sent: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    #: Hash of the browser-binding cookie of the browser that started the request.
    browser_hash: Mapped[str] = mapped_column(String(128))
    #: Hash of the CSRF token of the form currently shown.
    csrf_hash: Mapped[str] = mapped_column(String(128))
    #: The user and login session the consent page was shown to.
    user_id: Mapped[str | None] = mapped_column(String(64))
    login_session_hash: Mapped[str | None] = mapped_column(String(128))
    #: ``prompt=login`` was asked: only a login made on this request's own form counts.
    fresh_login_required: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``prompt=consent`` was asked: the consent page is shown even when consent is remembered.
    fresh_consent_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class RateCounter(Base):
    """A fixed-window counter shared by all workers (registration, failed logins/secrets)."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AuditEvent(Base):
    """A security event: registration, token issued, refresh reuse, revocation, consent…"""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str | None] = mapped_column(String(2048), index=True)
    subject: Mapped[str | None] = mapped_column(String(256), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    #: The id of the HTTP request that caused the event (as in the access log).
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IdentityProvider(Base):
    """An upstream OpenID Provider users may sign in with (``charter idps``).

    The client secret Charter authenticates with at the provider's token endpoint must be
    usable, so it is not hashed: it is stored encrypted (JWE ``dir`` + ``A256GCM``) under the
    deployment's key-encryption key, like the private signing keys, or named as an
    environment variable (``client_secret_env``) that holds it. With ``private_key_jwt``
    (RFC 7523 §2.2) Charter signs a client assertion with its own key instead, stored
    encrypted the same way.
    """

    __tablename__ = "identity_providers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Names the provider in URLs (``/login/idp/<slug>``) and on the command line.
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    #: The provider's issuer identifier, compared exactly (OpenID Connect Discovery §4.3).
    issuer: Mapped[str] = mapped_column(String(2048), unique=True)
    client_id: Mapped[str] = mapped_column(String(2048))
    client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    client_secret_env: Mapped[str | None] = mapped_column(String(256))
    #: For ``private_key_jwt``: Charter's private signing key (a JWK), encrypted like the
    #: client secret; its public half is registered at the provider.
    client_key_encrypted: Mapped[str | None] = mapped_column(Text)
    #: ``client_secret_basic``, ``client_secret_post`` or ``private_key_jwt``.
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(64))
    #: Scopes asked for at the provider (space-separated, ``openid`` always among them).
    scopes: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Create unknown users at their first sign-in (else only pre-linked users may sign in).
    jit: Mapped[bool] = mapped_column(Boolean, default=True)
    #: E-mail domains allowed to sign in (empty: any); needs ``email_verified``.
    allowed_email_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Claims that must hold a value: ``{"claim": "value"}`` (a list claim must contain it).
    required_claims: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The claim whose values map to the scopes a user may grant (e.g. ``groups``).
    scope_claim: Mapped[str | None] = mapped_column(String(256))
    #: Value of ``scope_claim`` → space-separated scopes; empty: no restriction.
    scope_map: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class UserLink(Base):
    """A local user linked to an upstream account by the provider's issuer and ``sub``."""

    __tablename__ = "user_links"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_user_links_issuer_subject"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(2048))
    subject: Mapped[str] = mapped_column(String(255))
    #: The provider's claims of the last sign-in (for display; never used to link).
    email: Mapped[str | None] = mapped_column(String(320))
    #: The scopes the provider's claim mapping let the user grant at the last sign-in
    #: (space-separated); None for no limit. Codes for the user never carry others.
    scope_limit: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_login_at: Mapped[int | None] = mapped_column(BigInteger)


class UpstreamLogin(Base):
    """A sign-in sent to an upstream provider, waiting for its callback (any worker may finish it).

    Found by the hash of its ``state``; bound to the pending authorization request and to the
    browser that started it; ``used_at`` is set by the one statement that consumes it.
    """

    __tablename__ = "upstream_logins"

    state_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    #: The pending authorization request (its hash) and its id, encrypted (to continue it).
    pending_hash: Mapped[str] = mapped_column(String(128))
    request_id_encrypted: Mapped[str] = mapped_column(Text)
    browser_hash: Mapped[str] = mapped_column(String(128))
    nonce_hash: Mapped[str] = mapped_column(String(128))
    #: The PKCE ``code_verifier`` (RFC 7636 §4.1), sent with the code to the token endpoint.
    code_verifier: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


Index("ix_access_tokens_grant_revoked", AccessToken.grant_id, AccessToken.revoked_at)
