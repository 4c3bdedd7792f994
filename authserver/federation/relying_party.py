"""Charter as a relying party of an upstream OpenID Provider: ``GET /login/idp/<slug>`` and
``GET /login/idp/callback`` (OpenID Connect Core 1.0 §3.1; RFC 7636; RFC 9207; RFC 9700 §4.4
and §4.7; S75-S79).

Start: the pending authorization request of this browser (its id in the query, the
browser-binding cookie) is sent to the provider with the authorization code flow, PKCE S256,
and fresh ``state`` and ``nonce``. An :class:`UpstreamLogin` row (in SQL, so any worker can
finish it) binds them to the pending request and to the browser.

Callback, in order:

1. ``state`` finds its row and consumes it in one statement (``used_at`` set only where it was
   empty and unexpired): a replayed or unknown ``state`` gets the error page (S75). The row
   must belong to this browser and its pending request.
2. ``iss`` (RFC 9207 §2.4) must be the row's provider's issuer when present, and must be
   present when the provider's metadata says it sends it: a response of another provider sent
   to our one callback is refused (mix-up, S77).
3. The code is redeemed at the row's provider with the PKCE verifier; the ID token is checked
   (:mod:`authserver.federation.id_token`, S76); the UserInfo endpoint completes its claims
   when it lacks a name or an e-mail address (optional, same ``sub`` only).
4. Sign-in rules (:mod:`authserver.federation.providers`) are checked at every sign-in; a
   linked user they refuse loses every Charter login session (S79).
5. The user is found by (issuer, ``sub``) only, or created just in time (S78,
   :mod:`authserver.federation.accounts`); the claim mapping limits the scopes.
6. A login session starts and the pending request continues as after a password login: to the
   client when consent is remembered, else to Charter's consent page.

Every refusal shows Charter's error page saying why, creates no account and is audited
(``upstream_login_refused``). Blocking: run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import Response

from authserver.browser.approval import continue_after_login
from authserver.browser.login import create_login_session
from authserver.browser.pages import Pages, error_page, redirect
from authserver.browser.pending import load_pending
from authserver.context import AuthServer
from authserver.federation.accounts import create_linked_user, display_name_of, find_link
from authserver.federation.client_assertion import client_assertion
from authserver.federation.discovery import DiscoveryError, ProviderMetadata, UpstreamDirectory
from authserver.federation.id_token import IdTokenError, verify_id_token
from authserver.federation.paths import CALLBACK_PATH
from authserver.federation.providers import (
    PRIVATE_KEY_JWT,
    ProviderConfigError,
    client_secret,
    find_provider,
    limited_scope,
    rule_violation,
    scope_limit,
)
from authserver.federation.token_exchange import TokenRequestError, fetch_userinfo, redeem_code
from authserver.oauth.pkce import s256
from authserver.storage import rate_limits
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, new_token, token_matches
from authserver.storage.models import (
    IdentityProvider,
    LoginSession,
    UpstreamLogin,
    User,
    UserLink,
)
from authserver.storage.signing_keys import KeyDecryptionError

#: How long the provider's sign-in may take, seconds.
UPSTREAM_TTL = 600
#: Sign-ins one pending request may send upstream per window.
STARTS_PER_REQUEST = 10
START_WINDOW = 300
GO_BACK = " Go back to the application and start again."
#: Claims asked of the UserInfo endpoint when the ID token lacks one of them.
USERINFO_CLAIMS = ("preferred_username", "name", "email")


def callback_uri(server: AuthServer) -> str:
    """The redirect URI registered at every provider (one for all: hence RFC 9207)."""
    return server.settings.issuer.rstrip("/") + CALLBACK_PATH


@dataclass(frozen=True)
class _Login:
    """A consumed upstream login and its provider, read in one transaction."""

    provider: IdentityProvider
    request_id: str
    pending_hash: str
    browser_hash: str
    nonce_hash: str
    code_verifier: str


class Refused(Exception):
    """A sign-in through the provider is refused; ``reason`` is shown and audited."""

    def __init__(self, reason: str, status_code: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class UpstreamSignIn:
    """The blocking parts of the upstream sign-in (SQL, outbound HTTP, signatures)."""

    def __init__(self, server: AuthServer, directory: UpstreamDirectory | None = None) -> None:
        self.server = server
        self.pages = Pages(server)
        self.directory = directory or UpstreamDirectory(server.settings)

    # -- start ---------------------------------------------------------------------------------

    def start(self, slug: str, request_id: str | None, browser_value: str | None) -> Response:
        """Send the browser to the provider ``slug`` for the pending request ``request_id``."""
        now = self.server.now()
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, request_id, browser_value)
            if row is None or browser_value is None or request_id is None:
                return self.pages.expired()
            provider = find_provider(session, slug)
            if provider is None or not provider.enabled:
                return error_page(
                    self.server, "invalid_request", "No such sign-in provider.", status_code=404
                )
            key = f"upstream:start:{row.id_hash}"
            if rate_limits.hit(
                session, key, now=now, window=START_WINDOW, limit=STARTS_PER_REQUEST
            ):
                return self.pages.too_many_requests(START_WINDOW)
            pending_hash, fresh_login = row.id_hash, row.fresh_login_required
        try:
            metadata = self.directory.metadata(provider.issuer)
        except DiscoveryError as error:
            return self._unavailable(provider, str(error))
        state, nonce, verifier = new_token(), new_token(), new_token(48)
        with self.server.database.transaction() as session:
            session.add(
                UpstreamLogin(
                    state_hash=hash_token(state),
                    provider_id=provider.id,
                    pending_hash=pending_hash,
                    request_id_encrypted=self.server.keys.encrypt_secret(request_id),
                    browser_hash=hash_token(browser_value),
                    nonce_hash=hash_token(nonce),
                    code_verifier=verifier,
                    created_at=now,
                    expires_at=now + UPSTREAM_TTL,
                    used_at=None,
                )
            )
        query = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": callback_uri(self.server),
            "scope": provider.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if fresh_login:
            query["prompt"] = "login"
        endpoint = metadata.authorization_endpoint
        separator = "&" if "?" in endpoint else "?"
        return redirect(endpoint + separator + urlencode(query), status_code=302)

    def _unavailable(self, provider: IdentityProvider, why: str) -> Response:
        return error_page(
            self.server,
            "temporarily_unavailable",
            f"Signing in with {provider.display_name} is not possible right now: {why}.",
            status_code=502,
        )

    # -- callback ------------------------------------------------------------------------------

    def callback(
        self, params: Mapping[str, str], browser_value: str | None, ip: str
    ) -> tuple[Response, str | None]:
        """Finish the sign-in; the response and the new session cookie value (or None)."""
        login: _Login | None = None
        try:
            login = self._consume(params.get("state"), browser_value)
            claims = self._verified_claims(login, params)
            return self._sign_in(login, claims, browser_value, ip)
        except Refused as refused:
            self._audit_refusal(login, refused.reason, ip)
            page = error_page(
                self.server,
                "access_denied",
                f"Signing in did not work: {refused.reason}.{GO_BACK}",
                status_code=refused.status_code,
            )
            return page, None

    def _consume(self, state: str | None, browser_value: str | None) -> _Login:
        """The row of ``state``, consumed now (exactly once, S75)."""
        if not state or len(state) > 256:
            raise Refused("the answer of the provider carries no sign-in state", status_code=400)
        now = self.server.now()
        state_hash = hash_token(state)
        with self.server.database.transaction() as session:
            consumed = session.execute(
                update(UpstreamLogin)
                .where(
                    UpstreamLogin.state_hash == state_hash,
                    UpstreamLogin.used_at.is_(None),
                    UpstreamLogin.expires_at > now,
                )
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            row = (
                session.get(UpstreamLogin, state_hash)
                if getattr(consumed, "rowcount", 0) == 1
                else None
            )
            provider = session.get(IdentityProvider, row.provider_id) if row else None
            login = None
            if row is not None and provider is not None:
                session.expunge(provider)
                login = _Login(
                    provider,
                    self.server.keys.decrypt_secret(row.request_id_encrypted),
                    row.pending_hash,
                    row.browser_hash,
                    row.nonce_hash,
                    row.code_verifier,
                )
        # Consumed (committed) before anything else is checked: a state works once only.
        if login is None:
            raise Refused("this sign-in was already used, has expired or was never started")
        if not login.provider.enabled:
            raise Refused("this sign-in provider is no longer available")
        if not browser_value or not token_matches(browser_value, login.browser_hash):
            raise Refused("this sign-in was started in another browser")
        return login

    def _verified_claims(self, login: _Login, params: Mapping[str, str]) -> dict[str, Any]:
        """Check the response's ``iss``, redeem the code, verify the ID token."""
        provider = login.provider
        try:
            metadata = self.directory.metadata(provider.issuer)
        except DiscoveryError as error:
            raise Refused(f"{provider.display_name} cannot be reached ({error})", 502) from error
        _check_response_issuer(metadata, params)
        if "error" in params:
            said = params["error"][:64]
            raise Refused(f"{provider.display_name} answered {said!r}")
        code = params.get("code")
        if not code:
            raise Refused(f"{provider.display_name} sent no authorization code", status_code=400)
        tokens = self._redeem(login, metadata, code)
        try:
            claims = verify_id_token(
                tokens["id_token"],
                keys=lambda kid: self.directory.keys(provider.issuer, kid),
                issuer=provider.issuer,
                client_id=provider.client_id,
                nonce_hash=login.nonce_hash,
                now=self.server.now(),
                leeway=self.server.settings.leeway_seconds,
            )
        except (IdTokenError, DiscoveryError) as error:
            raise Refused(str(error)) from error
        return self._with_userinfo(provider, metadata, tokens, claims)

    def _with_userinfo(
        self,
        provider: IdentityProvider,
        metadata: ProviderMetadata,
        tokens: dict[str, Any],
        claims: dict[str, Any],
    ) -> dict[str, Any]:
        """The ID token's claims, completed by the UserInfo endpoint when they lack a name or
        an e-mail address (§5.3.2: only an answer for the same ``sub`` is used; the ID token's
        claims win). UserInfo is optional: when it fails the ID token's claims are used."""
        access_token = tokens.get("access_token")
        lacking = any(name not in claims for name in USERINFO_CLAIMS)
        if not (metadata.userinfo_endpoint and isinstance(access_token, str) and lacking):
            return claims
        try:
            info = fetch_userinfo(
                metadata.userinfo_endpoint, self.directory.policy(provider.issuer), access_token
            )
        except TokenRequestError:
            return claims
        if info.get("sub") != claims["sub"]:
            return claims
        extra = {name: value for name, value in info.items() if name not in ("iss", "aud")}
        return {**extra, **claims}

    def _redeem(self, login: _Login, metadata: ProviderMetadata, code: str) -> dict[str, Any]:
        provider = login.provider
        try:
            secret = client_secret(provider, self.server.keys)
            assertion = None
            if provider.token_endpoint_auth_method == PRIVATE_KEY_JWT:
                if not provider.client_key_encrypted:
                    raise ProviderConfigError("private_key_jwt without a key")
                assertion = client_assertion(
                    provider.client_key_encrypted,
                    self.server.keys,
                    client_id=provider.client_id,
                    token_endpoint=metadata.token_endpoint,
                    now=self.server.now(),
                )
        except (ProviderConfigError, KeyDecryptionError) as error:
            raise Refused(f"{provider.display_name} is not configured correctly", 500) from error
        try:
            return redeem_code(
                metadata.token_endpoint,
                self.directory.policy(provider.issuer),
                code=code,
                redirect_uri=callback_uri(self.server),
                code_verifier=login.code_verifier,
                client_id=provider.client_id,
                client_secret=secret,
                auth_method=provider.token_endpoint_auth_method,
                client_assertion=assertion,
            )
        except TokenRequestError as error:
            raise Refused(str(error), status_code=502) from error

    def _sign_in(
        self, login: _Login, claims: dict[str, Any], browser_value: str | None, ip: str
    ) -> tuple[Response, str | None]:
        """Find or create the user, check the rules, start the login, continue the request."""
        provider = login.provider
        violation = rule_violation(provider, claims)
        if violation is not None:
            self._end_logins_of_refused(provider, str(claims["sub"]))
            raise Refused(violation)
        limit = scope_limit(provider, claims)
        with self.server.database.transaction() as session:
            row = load_pending(session, self.server, login.request_id, browser_value)
            if row is None or row.id_hash != login.pending_hash:
                return self.pages.expired(), None
            scope = limited_scope(row.scope, limit)
            if not scope:
                raise Refused("your account may not grant any of the permissions asked for")
            user, link = self._user(session, provider, claims, ip)
            email = claims.get("email")
            now = self.server.now()
            link.email = email[:320] if isinstance(email, str) else None
            link.scope_limit = " ".join(sorted(limit)) if limit is not None else None
            link.last_login_at = now
            row.scope = scope
            cookie_value = create_login_session(session, self.server, user.id)
            record_event(
                session,
                "login_succeeded",
                at=now,
                client_id=row.client_id,
                subject=user.id,
                ip=ip,
                method="upstream",
                provider=provider.slug,
            )
            response = continue_after_login(
                session, self.pages, row, login.request_id, user.id, cookie_value, ip
            )
        return response, cookie_value

    def _user(
        self, session: Session, provider: IdentityProvider, claims: dict[str, Any], ip: str
    ) -> tuple[User, UserLink]:
        """The user linked to (issuer, ``sub``), or a new one (just in time); else refused."""
        link = find_link(session, provider.issuer, str(claims["sub"]))
        if link is None:
            if not provider.jit:
                raise Refused(
                    f"no account here is linked to your {provider.display_name} account; "
                    "ask the administrator to add you"
                )
            now = self.server.now()
            try:
                with session.begin_nested():
                    user, link = create_linked_user(session, provider.issuer, claims, now)
            except IntegrityError:
                # The same account's first sign-in in another browser won the race (the unique
                # (issuer, sub)), or took the name: use its user, or let this one try again.
                link = find_link(session, provider.issuer, str(claims["sub"]))
                if link is None:
                    raise Refused("signing in raced with another sign-in; try again") from None
                return self._existing(session, link, claims)
            record_event(
                session,
                "user_created",
                at=now,
                subject=user.id,
                ip=ip,
                actor="upstream",
                provider=provider.slug,
            )
            return user, link
        return self._existing(session, link, claims)

    def _existing(
        self, session: Session, link: UserLink, claims: dict[str, Any]
    ) -> tuple[User, UserLink]:
        """The linked user (its name refreshed from the claims), unless disabled."""
        found = session.get(User, link.user_id)
        if found is None or found.disabled:
            raise Refused("your account here is disabled")
        found.display_name = display_name_of(claims) or found.display_name
        return found, link

    def _end_logins_of_refused(self, provider: IdentityProvider, subject: str) -> None:
        """S79: a linked user the rules now refuse keeps no Charter login (so no new grants)."""
        with self.server.database.transaction() as session:
            link = find_link(session, provider.issuer, subject)
            if link is not None:
                session.execute(delete(LoginSession).where(LoginSession.user_id == link.user_id))

    def _audit_refusal(self, login: _Login | None, reason: str, ip: str) -> None:
        provider = login.provider.slug if login is not None else None
        with self.server.database.transaction() as session:
            record_event(
                session,
                "upstream_login_refused",
                at=self.server.now(),
                ip=ip,
                provider=provider,
                reason=reason,
            )


def _check_response_issuer(metadata: ProviderMetadata, params: Mapping[str, str]) -> None:
    """RFC 9207 §2.4: ``iss`` equals the provider's issuer; required when it says it sends it."""
    iss = params.get("iss")
    if iss is None and metadata.iss_parameter_supported:
        raise Refused("the provider's answer does not say who sent it (iss)")
    if iss is not None and iss != metadata.issuer:
        raise Refused("the answer came from another provider than the one you chose (iss)")
