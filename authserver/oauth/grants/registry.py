"""The grants this server accepts, registered once (RFC 6749 §4; RFC 7591 §2; RFC 8414 §2).

Every part that names grant types reads them from :data:`REGISTERED_GRANTS`: the token
endpoint's adapter registers their implementations with authlib, the authorization server
metadata publishes ``grant_types_supported``, ``response_types_supported`` and
``token_endpoint_auth_methods_supported``, client registration (dynamic, metadata documents)
and ``charter clients add`` check a client's grant types against the rules written here:
a grant may need another one (``refresh_token`` goes with ``authorization_code``), a
confidential client, or an administrator-made client (``client_credentials`` issues tokens with
no user behind them).

Adding a grant type is adding its implementation and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from authserver.oauth.grants.authorization_code import AuthorizationCodeGrant
from authserver.oauth.grants.client_credentials import ClientCredentialsGrant
from authserver.oauth.grants.refresh_token import RefreshTokenGrant
from authserver.oauth.pkce import PkceS256


class GrantTypeError(ValueError):
    """A set of grant types a client may not register; the message says why.

    ``missing`` names what would make it acceptable: ``"confidential"`` (a client secret),
    ``"administrator"`` (a client an administrator creates) or another grant type's name.
    """

    def __init__(self, message: str, *, missing: str = "") -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class RegisteredGrant:
    """One grant type of the token endpoint and what a client needs to use it."""

    #: The authlib grant subclass; its ``GRANT_TYPE`` is the ``grant_type`` value and its
    #: ``TOKEN_ENDPOINT_AUTH_METHODS`` the client authentication methods it accepts.
    implementation: type[Any]
    #: authlib grant extensions, made anew for every request (PKCE).
    extensions: tuple[Callable[[], object], ...] = ()
    #: The authorization endpoint's ``response_type`` that starts it (RFC 7591 §2.1), if any;
    #: such a grant also needs a redirect URI.
    response_type: str | None = None
    #: Grant types a client must also register.
    requires: tuple[str, ...] = ()
    #: Only clients with a secret may use it.
    confidential_only: bool = False
    #: Only clients an administrator created may use it, never self-registered ones.
    administrator_only: bool = False

    @property
    def grant_type(self) -> str:
        """The ``grant_type`` value (RFC 6749 §4.1.3, §4.4.2, §6)."""
        return str(self.implementation.GRANT_TYPE)

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """Client authentication methods the token endpoint accepts with it."""
        return tuple(self.implementation.TOKEN_ENDPOINT_AUTH_METHODS)


REGISTERED_GRANTS: tuple[RegisteredGrant, ...] = (
    RegisteredGrant(AuthorizationCodeGrant, extensions=(PkceS256,), response_type="code"),
    RegisteredGrant(RefreshTokenGrant, requires=("authorization_code",)),
    RegisteredGrant(ClientCredentialsGrant, confidential_only=True, administrator_only=True),
)


def registered_grant_types() -> list[str]:
    """Every registered ``grant_type`` value, in registration order."""
    return [grant.grant_type for grant in REGISTERED_GRANTS]


def registered_grant(grant_type: str) -> RegisteredGrant | None:
    """The registered grant called ``grant_type``, or None."""
    return next((grant for grant in REGISTERED_GRANTS if grant.grant_type == grant_type), None)


def registered_response_types() -> list[str]:
    """Every ``response_type`` some registered grant is started with."""
    return list(dict.fromkeys(g.response_type for g in REGISTERED_GRANTS if g.response_type))


def response_types_for(grant_types: Iterable[str]) -> tuple[str, ...]:
    """The response types that go with ``grant_types`` (RFC 7591 §2.1)."""
    found = (registered_grant(name) for name in grant_types)
    return tuple(dict.fromkeys(g.response_type for g in found if g and g.response_type))


def token_endpoint_auth_methods() -> list[str]:
    """Every client authentication method some registered grant accepts."""
    return list(dict.fromkeys(method for g in REGISTERED_GRANTS for method in g.auth_methods))


def needs_redirect_uri(grant_types: Iterable[str]) -> bool:
    """True when one of ``grant_types`` is started at the authorization endpoint."""
    return bool(response_types_for(grant_types))


def check_grant_types(
    grant_types: Collection[str], *, confidential: bool, administrator: bool
) -> None:
    """Raise :class:`GrantTypeError` unless a client may register ``grant_types``.

    The rules are checked in this order, for every grant chosen: known at all, the grants it
    requires, administrator-made clients only, confidential clients only.
    """
    unknown = sorted(set(grant_types) - set(registered_grant_types()))
    if unknown:
        raise GrantTypeError(f"unsupported grant_types: {unknown}")
    chosen = [grant for grant in REGISTERED_GRANTS if grant.grant_type in grant_types]
    for grant in chosen:
        for required in grant.requires:
            if required not in grant_types:
                raise GrantTypeError(
                    f"{grant.grant_type} needs the {required} grant too", missing=required
                )
    for grant in chosen:
        if grant.administrator_only and not administrator:
            raise GrantTypeError(
                f"the {grant.grant_type} grant is not available to dynamically registered or "
                "metadata document clients; an administrator must create such a client "
                f"(charter clients add --grant-type {grant.grant_type})",
                missing="administrator",
            )
    for grant in chosen:
        if grant.confidential_only and not confidential:
            raise GrantTypeError(
                f"{grant.grant_type} needs a confidential client", missing="confidential"
            )
