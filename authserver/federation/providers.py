"""Upstream OpenID Providers as configured by ``charter idps`` (the ``identity_providers``
table), their client secrets, and their sign-in rules (S79).

A provider's client secret must be sent to its token endpoint, so it cannot be hashed: it is
stored encrypted under the deployment's key-encryption key
(:meth:`authserver.storage.signing_keys.KeyStore.encrypt_secret`), or the row names an
environment variable holding it (``client_secret_env``), read at each use.

Rules are checked at every sign-in through the provider, never only the first:
``allowed_email_domains`` needs a verified ``email`` in one of the domains; each
``required_claims`` entry needs the claim to equal the value (or, for a list claim, contain it).
``scope_claim`` + ``scope_map`` limit the scopes the user may grant to those mapped from the
claim's values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.storage.models import IdentityProvider
from authserver.storage.signing_keys import KeyStore

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Slugs that would collide with the routes under ``/login/idp/``.
RESERVED_SLUGS = frozenset({"callback"})
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
PRIVATE_KEY_JWT = "private_key_jwt"
DEFAULT_SCOPES = "openid profile email"


class ProviderConfigError(ValueError):
    """A provider setting that cannot be used; the message names it."""


def check_slug(slug: str) -> str:
    """``slug`` when it is 1-63 lower-case letters, digits and dashes (not reserved)."""
    if not SLUG.match(slug) or slug in RESERVED_SLUGS:
        raise ProviderConfigError(
            "a slug has 1-63 lower-case letters, digits and dashes, and is not 'callback'"
        )
    return slug


def check_scopes(scopes: str) -> str:
    """The scopes asked upstream, ``openid`` first (OpenID Connect Core §3.1.2.1)."""
    words = [word for word in scopes.split() if word != "openid"]
    return " ".join(["openid", *dict.fromkeys(words)])


def parse_claim_rule(text: str) -> tuple[str, str]:
    """``claim=value`` as a pair."""
    claim, sep, value = text.partition("=")
    if not sep or not claim.strip() or not value:
        raise ProviderConfigError(f"{text!r} is not claim=value")
    return claim.strip(), value


def find_provider(session: Session, slug: str) -> IdentityProvider | None:
    """The provider called ``slug``."""
    return session.scalars(select(IdentityProvider).where(IdentityProvider.slug == slug)).first()


def enabled_providers(session: Session) -> list[IdentityProvider]:
    """The enabled providers, by display name."""
    query = (
        select(IdentityProvider)
        .where(IdentityProvider.enabled.is_(True))
        .order_by(IdentityProvider.display_name, IdentityProvider.slug)
    )
    return list(session.scalars(query))


def client_secret(provider: IdentityProvider, keys: KeyStore) -> str | None:
    """The secret Charter authenticates with at the provider (None for none)."""
    if provider.client_secret_env:
        value = os.environ.get(provider.client_secret_env)
        if not value:
            raise ProviderConfigError(
                f"the environment variable {provider.client_secret_env} holding the client "
                f"secret of {provider.slug} is not set"
            )
        return value
    if provider.client_secret_encrypted:
        return keys.decrypt_secret(provider.client_secret_encrypted)
    return None


def _values(claim: Any) -> list[str]:
    if isinstance(claim, str):
        return [claim]
    if isinstance(claim, list):
        return [item for item in claim if isinstance(item, str)]
    if isinstance(claim, bool):
        return ["true" if claim else "false"]
    return [str(claim)] if isinstance(claim, int | float) else []


def rule_violation(provider: IdentityProvider, claims: dict[str, Any]) -> str | None:
    """Why ``claims`` may not sign in through ``provider`` (a sentence), or None."""
    domains = [domain.lower().lstrip("@") for domain in provider.allowed_email_domains or []]
    if domains:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            return "a verified e-mail address is required to sign in here"
        if email.rpartition("@")[2].lower() not in domains:
            return "accounts of this e-mail domain may not sign in here"
    for claim, value in (provider.required_claims or {}).items():
        if str(value) not in _values(claims.get(claim)):
            return f"your account at {provider.display_name} lacks what is required ({claim})"
    return None


def scope_limit(provider: IdentityProvider, claims: dict[str, Any]) -> set[str] | None:
    """The scopes the user may grant by the provider's claim mapping; None for no limit."""
    if not provider.scope_claim or not provider.scope_map:
        return None
    allowed: set[str] = set()
    for value in _values(claims.get(provider.scope_claim)):
        mapped = provider.scope_map.get(value)
        if isinstance(mapped, str):
            allowed.update(mapped.split())
    return allowed


def limited_scope(scope: str, limit: Iterable[str] | None) -> str:
    """``scope`` without the scopes outside ``limit`` (all of it when ``limit`` is None)."""
    if limit is None:
        return scope
    allowed = set(limit)
    return " ".join(word for word in scope.split() if word in allowed)
