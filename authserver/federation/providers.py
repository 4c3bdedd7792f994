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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.config.settings import is_loopback_host
from authserver.storage.models import IdentityProvider
from authserver.storage.signing_keys import KeyStore

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Slugs that would collide with the routes under ``/login/idp/``.
RESERVED_SLUGS = frozenset({"callback"})
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
PRIVATE_KEY_JWT = "private_key_jwt"
DEFAULT_SCOPES = "openid profile email"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
#: Where a provider's settings come from (``identity_providers.source``).
FROM_CLI, FROM_FILE, DROPPED_FROM_FILE = "cli", "file", "file-removed"


class ProviderConfigError(ValueError):
    """A provider setting that cannot be used; ``field`` names it (as the providers file
    does: ``issuer``, ``scope_map`` …), the message says why."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def check_slug(slug: str) -> str:
    """``slug`` when it is 1-63 lower-case letters, digits and dashes (not reserved)."""
    if not SLUG.match(slug) or slug in RESERVED_SLUGS:
        raise ProviderConfigError(
            "has 1-63 lower-case letters, digits and dashes, and is not 'callback'", field="slug"
        )
    return slug


def check_issuer(issuer: str) -> str:
    """``issuer`` when it is an https URL (http only on loopback) without query, fragment or
    user name (OpenID Connect Discovery §2)."""
    import httpx  # here, not at import: a serving worker loads it on its first outbound call

    try:
        url = httpx.URL(issuer)
    except httpx.InvalidURL:
        raise ProviderConfigError(f"{issuer!r} is not a URL", field="issuer") from None
    loopback_http = url.scheme == "http" and is_loopback_host(url.host)
    if not (url.scheme == "https" or loopback_http) or not url.host:
        raise ProviderConfigError(
            "must be an https URL (http only on loopback, for tests)", field="issuer"
        )
    if url.query or url.fragment or url.userinfo:
        raise ProviderConfigError(
            "has no query, fragment or user name (OpenID Connect Discovery §2)", field="issuer"
        )
    return issuer


@dataclass(frozen=True)
class ProviderSettings:
    """A provider's settings, checked: what ``charter idps add`` and the providers file
    (:mod:`authserver.federation.provider_file`) both give. The secret itself is not here."""

    slug: str
    issuer: str
    client_id: str
    display_name: str
    token_endpoint_auth_method: str
    scopes: str
    enabled: bool
    jit: bool
    client_secret_env: str | None = None
    allowed_email_domains: list[str] = field(default_factory=list)
    required_claims: dict[str, str] = field(default_factory=dict)
    scope_claim: str | None = None
    scope_map: dict[str, str] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The ``identity_providers`` columns these settings fill."""
        return {
            "slug": self.slug,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "display_name": self.display_name,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "scopes": self.scopes,
            "enabled": self.enabled,
            "jit": self.jit,
            "client_secret_env": self.client_secret_env,
            "allowed_email_domains": list(self.allowed_email_domains),
            "required_claims": dict(self.required_claims),
            "scope_claim": self.scope_claim,
            "scope_map": dict(self.scope_map),
        }


def _check_rules(name: str, rules: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in rules.items():
        if not key.strip() or not value:
            raise ProviderConfigError(f"{key!r}={value!r} needs a name and a value", field=name)
        checked[key.strip()] = value
    return checked


def checked_settings(
    *,
    slug: str,
    issuer: str,
    client_id: str,
    display_name: str | None = None,
    token_endpoint_auth_method: str | None = None,
    scopes: str | None = None,
    enabled: bool = True,
    jit: bool = True,
    client_secret_env: str | None = None,
    allowed_email_domains: Sequence[str] = (),
    required_claims: Mapping[str, str] | None = None,
    scope_claim: str | None = None,
    scope_map: Mapping[str, str] | None = None,
) -> ProviderSettings:
    """A provider's settings, checked and normalised (raises :class:`ProviderConfigError`)."""
    check_slug(slug)
    if not client_id or len(client_id) > 2048:
        raise ProviderConfigError("has 1-2048 characters", field="client_id")
    method = token_endpoint_auth_method or AUTH_METHODS[0]
    if method not in AUTH_METHODS:
        raise ProviderConfigError(f"is one of {', '.join(AUTH_METHODS)}", field="auth_method")
    if client_secret_env is not None and not ENV_NAME.match(client_secret_env):
        raise ProviderConfigError(
            f"{client_secret_env!r} is not an environment variable name", field="client_secret_env"
        )
    mapped = _check_rules("scope_map", scope_map or {})
    if mapped and not scope_claim:
        raise ProviderConfigError("needs scope_claim (--scope-claim)", field="scope_map")
    return ProviderSettings(
        slug=slug,
        issuer=check_issuer(issuer),
        client_id=client_id,
        display_name=(display_name or slug).strip()[:256] or slug,
        token_endpoint_auth_method=method,
        scopes=check_scopes(scopes or DEFAULT_SCOPES),
        enabled=enabled,
        jit=jit,
        client_secret_env=client_secret_env or None,
        allowed_email_domains=[domain.lower().lstrip("@") for domain in allowed_email_domains],
        required_claims=_check_rules("required_claims", required_claims or {}),
        scope_claim=scope_claim or None,
        scope_map=mapped,
    )


def check_scopes(scopes: str) -> str:
    """The scopes asked upstream, ``openid`` first (OpenID Connect Core §3.1.2.1)."""
    words = [word for word in scopes.split() if word != "openid"]
    return " ".join(["openid", *dict.fromkeys(words)])


def parse_claim_rule(text: str) -> tuple[str, str]:
    """``claim=value`` as a pair."""
    claim, sep, value = text.partition("=")
    if not sep or not claim.strip() or not value:
        raise ProviderConfigError(f"{text!r} is not claim=value", field="rule")
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
