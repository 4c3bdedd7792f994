"""Validation of an authorization request as an ordered list of small named checks
(RFC 6749 §4.1.1 and §4.1.2.1, OAuth 2.1 §4.1.1, RFC 7636 §4.3, RFC 8707 §2, RFC 9700 §4.1).

Until the client and its redirect URI are known to be good, a failure is shown on the
authorization server's own page and never redirected (:class:`PageError`, S3). After that, a
failure is an error response for the client (:class:`RedirectableError`); the endpoint decides
whether to redirect it or to offer a link (S4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from authserver.clients.redirect_uris import is_acceptable_redirect_uri
from authserver.clients.store import load_client
from authserver.context import AuthServer
from authserver.errors import (
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from authserver.oauth.redirects import RedirectMatch, match_redirect_uri
from authserver.oauth.resources import resolve_resource
from authserver.oauth.scopes import resolve_scope
from authserver.storage.models import Client
from authserver.text_input import has_nul

PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
MAX_STATE_LENGTH = 8192
#: Parameters that RFC 8707 §2 allows more than once (several are refused later, S31).
REPEATABLE = frozenset({"resource"})
#: ``prompt`` values honoured (OpenID Connect Core §3.1.2.1): ``none`` (no page: answers
#: ``login_required``/``consent_required``), ``login`` (ask for the password even when logged
#: in) and ``consent`` (show the consent page even when consent is remembered). Others (such as
#: ``select_account``) are ignored. Published as ``prompt_values_supported``.
PROMPTS = ("none", "login", "consent")


class PageError(Exception):
    """A failure before the redirect URI is trusted: shown on the AS's page, never redirected."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class RedirectableError(Exception):
    """A failure that may be sent to the client's redirect URI (with ``state`` and ``iss``)."""

    def __init__(
        self, error: OAuthError, client: Client, redirect: RedirectMatch, state: str | None
    ):
        super().__init__(error.description)
        self.error = error
        self.client = client
        self.redirect = redirect
        self.state = state


@dataclass(frozen=True)
class AuthorizationRequest:
    """A request that passed every check."""

    client: Client
    redirect: RedirectMatch
    state: str | None
    scope: str
    resource: str
    code_challenge: str
    prompt: frozenset[str] = frozenset()


@dataclass
class Checking:
    """What the checks read and fill in, in order."""

    server: AuthServer
    params: Sequence[tuple[str, str]]
    client: Client | None = None
    redirect: RedirectMatch | None = None
    state: str | None = None
    scope: str = ""
    resource: str = ""
    code_challenge: str = ""
    prompt: frozenset[str] = frozenset()
    _values: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.params:
            self._values.setdefault(name, []).append(value)

    def values(self, name: str) -> list[str]:
        """Every value sent for ``name``."""
        return self._values.get(name, [])

    def single(self, name: str) -> str | None:
        """The value of a parameter sent at most once (checked earlier)."""
        values = self.values(name)
        return values[0] if values else None

    def names(self) -> list[str]:
        """Every parameter name sent."""
        return list(self._values)


# Checks before the client is known; failures are shown on our page.


def check_client_id(checking: Checking) -> None:
    """``client_id`` is present exactly once (S3, S7)."""
    values = checking.values("client_id")
    if len(values) != 1 or not values[0]:
        raise PageError("invalid_request", "The request must name exactly one client_id.")


def check_client_id_and_redirect_text(checking: Checking) -> None:
    """``client_id`` and ``redirect_uri`` hold no NUL (S102): never looked up, never trusted."""
    if has_nul(checking.values("client_id") + checking.values("redirect_uri")):
        raise PageError("invalid_request", "client_id and redirect_uri must not contain NUL.")


def check_redirect_uri_once(checking: Checking) -> None:
    """``redirect_uri`` is sent at most once (S7)."""
    if len(checking.values("redirect_uri")) > 1:
        raise PageError("invalid_request", "redirect_uri was sent more than once.")


def check_redirect_uri(checking: Checking) -> None:
    """``redirect_uri`` matches a registered one exactly, loopback ports aside (S1, S2, S3).

    A registered URI that today's rules refuse (stored before them, S101) is never used.
    """
    assert checking.client is not None  # noqa: S101 - ordering invariant
    registered = [
        uri for uri in checking.client.redirect_uris or [] if is_acceptable_redirect_uri(uri)
    ]
    match = match_redirect_uri(registered, checking.single("redirect_uri"))
    if match is None:
        if checking.single("redirect_uri") is None:
            raise PageError(
                "invalid_request",
                "This client registered several redirect URIs; the request must name one.",
            )
        raise PageError("invalid_request", "The redirect_uri is not registered for this client.")
    checking.redirect = match


# Checks after the redirect URI is trusted; failures are error responses for the client.


def check_no_nul(checking: Checking) -> None:
    """No parameter name or value holds a NUL (S102); ``state`` is then not echoed."""
    if has_nul(checking.names()) or any(has_nul(checking.values(n)) for n in checking.names()):
        raise InvalidRequestError("parameters must not contain NUL characters")


def check_state(checking: Checking) -> None:
    """``state`` is echoed exactly when sent once; never when duplicated or oversized."""
    values = checking.values("state")
    if len(values) == 1 and len(values[0]) <= MAX_STATE_LENGTH:
        checking.state = values[0]
    if len(values) == 1 and len(values[0]) > MAX_STATE_LENGTH:
        raise InvalidRequestError(f"state is longer than {MAX_STATE_LENGTH} characters")


def check_no_duplicates(checking: Checking) -> None:
    """No parameter but ``resource`` appears twice (S7)."""
    repeated = sorted(
        name
        for name in checking.names()
        if name not in REPEATABLE and len(checking.values(name)) > 1
    )
    if repeated:
        raise InvalidRequestError("parameters sent more than once: " + ", ".join(repeated[:5]))


def check_response_type(checking: Checking) -> None:
    """``response_type`` is ``code`` (S6)."""
    response_type = checking.single("response_type")
    if not response_type:
        raise InvalidRequestError("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseTypeError("only response_type=code is supported")


def check_client_may_use_code(checking: Checking) -> None:
    """The client registered the code flow (RFC 7591 §2 defaults when it registered none)."""
    client = checking.client
    assert client is not None  # noqa: S101 - ordering invariant
    grant_types = client.grant_types or ["authorization_code"]
    response_types = client.response_types or ["code"]
    if "authorization_code" not in grant_types or "code" not in response_types:
        raise UnauthorizedClientError(
            "this client is not registered for the authorization code flow"
        )


def check_pkce(checking: Checking) -> None:
    """A ``code_challenge`` with method ``S256`` (S10, S11, S12)."""
    challenge = checking.single("code_challenge")
    if not challenge:
        raise InvalidRequestError("code_challenge is required (PKCE, S256)")
    method = checking.single("code_challenge_method")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not PKCE_CHALLENGE.match(challenge):
        raise InvalidRequestError(
            "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"
        )
    checking.code_challenge = challenge


def check_prompt(checking: Checking) -> None:
    """``prompt`` (OpenID Connect Core §3.1.2.1): ``none`` alone, or ``login``/``consent``."""
    values = set((checking.single("prompt") or "").split())
    if "none" in values and len(values) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values")
    checking.prompt = frozenset(values.intersection(PROMPTS))


def check_resource(checking: Checking) -> None:
    """One ``resource``, this deployment's MCP URL, or none (S28-S31)."""
    checking.resource = resolve_resource(checking.server.settings, checking.values("resource"))


def check_scope(checking: Checking) -> None:
    """Scopes the client may have; the default when none is asked for (S9)."""
    assert checking.client is not None  # noqa: S101 - ordering invariant
    checking.scope = resolve_scope(
        checking.server.settings, checking.client, checking.single("scope")
    )


Check = Callable[[Checking], None]

#: Checks on the request before the client is loaded.
BEFORE_CLIENT: tuple[Check, ...] = (
    check_client_id,
    check_client_id_and_redirect_text,
    check_redirect_uri_once,
)
#: Checks once the client is loaded; failures are still shown on our page.
CLIENT_CHECKS: tuple[Check, ...] = (check_redirect_uri,)
#: Checks whose failures go back to the client.
REDIRECTABLE_CHECKS: tuple[Check, ...] = (
    check_no_nul,
    check_state,
    check_no_duplicates,
    check_response_type,
    check_client_may_use_code,
    check_pkce,
    check_prompt,
    check_resource,
    check_scope,
)


def document_client_id(server: AuthServer, params: Sequence[tuple[str, str]]) -> str:
    """The ``client_id`` to prefetch (a metadata document, S96) before validating: only once
    the checks before the client pass (no fetch for a request refused anyway), else empty."""
    checking = Checking(server, params)
    try:
        for check in BEFORE_CLIENT:
            check(checking)
    except PageError:
        return ""
    return checking.single("client_id") or ""


def validate_authorization_request(
    server: AuthServer, params: Sequence[tuple[str, str]]
) -> AuthorizationRequest:
    """Run every check (blocking: the client is read from the database; a metadata document
    is fetched before, by the endpoint awaiting :func:`authserver.clients.store.prefetch_client`
    for :func:`document_client_id`)."""
    checking = Checking(server, params)
    for check in BEFORE_CLIENT:
        check(checking)
    client_id = checking.single("client_id") or ""
    # Any metadata document was fetched before (document_client_id, awaited by the endpoint).
    try:
        with server.database.transaction() as session:
            client = load_client(server, session, client_id)
    except OAuthError as error:
        raise PageError(
            error.error, error.description or "The client could not be loaded."
        ) from error
    if client is None:
        raise PageError("invalid_client", "This application is not known to this server.")
    checking.client = client
    for check in CLIENT_CHECKS:
        check(checking)
    assert checking.redirect is not None  # noqa: S101 - set by check_redirect_uri
    for check in REDIRECTABLE_CHECKS:
        try:
            check(checking)
        except OAuthError as error:
            raise RedirectableError(error, client, checking.redirect, checking.state) from error
    return AuthorizationRequest(
        client=client,
        redirect=checking.redirect,
        state=checking.state,
        scope=checking.scope,
        resource=checking.resource,
        code_challenge=checking.code_challenge,
        prompt=checking.prompt,
    )
