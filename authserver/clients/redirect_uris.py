"""Redirect URI rules: which URIs a client may register (OAuth 2.1 §2.3.1, RFC 8252 §7).

``https`` URIs with a host; ``http`` only on the loopback hosts (RFC 8252 §7.3); private-use
schemes in reverse-DNS form (RFC 8252 §7.1); never fragments, wildcards, user information,
blanks, control characters, non-ASCII characters or the schemes of :data:`FORBIDDEN_SCHEMES`; an
``http(s)`` host is a valid host name or IP literal, an IDN only in its ASCII form
(:mod:`authserver.clients.hosts`, S101). Plus the
``application_type`` rules of OpenID Connect Dynamic Client Registration 1.0 §2, which MCP
2026-07-28 asks clients to send (SEP-837): ``web`` redirects only to https on a non-loopback
host, ``native`` only to loopback http or a private-use scheme.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import SplitResult, urlsplit

from authserver.clients.hosts import ascii_form, is_valid_host
from authserver.errors import InvalidRedirectUriError

#: Longest redirect URI accepted, characters.
MAX_REDIRECT_URI_LENGTH = 2048
LOOPBACK_REDIRECT_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss"}
)
#: RFC 8252 §7.1: private-use schemes are reverse domain names (contain a period).
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")
APPLICATION_TYPES = frozenset({"web", "native"})


def has_control_characters(value: str) -> bool:
    return any(ord(char) < 0x21 or ord(char) == 0x7F for char in value)


def _check_redirect_text(uri: Any) -> str:
    """The checks on the URI as text: a bounded string without blanks, fragment or wildcard."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRedirectUriError("each redirect URI must be a non-empty string")
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise InvalidRedirectUriError("redirect URI is too long")
    if has_control_characters(uri):
        raise InvalidRedirectUriError("redirect URI must not contain spaces or control characters")
    if "#" in uri:
        raise InvalidRedirectUriError("redirect URI must not contain a fragment")
    if "*" in uri:
        raise InvalidRedirectUriError("redirect URI must not contain wildcards")
    return uri


def _parse_redirect(uri: str) -> SplitResult:
    """The parts of an absolute URI of an allowed scheme, without user information."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise InvalidRedirectUriError("redirect URI is not a valid URI") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidRedirectUriError("redirect URI must be absolute")
    if scheme in FORBIDDEN_SCHEMES:
        raise InvalidRedirectUriError(f"redirect URI scheme {scheme!r} is not allowed")
    if "@" in parts.netloc:
        raise InvalidRedirectUriError("redirect URI must not contain user information")
    return parts


def _check_web_redirect(parts: SplitResult) -> None:
    """``https`` with a host, or ``http`` on a loopback host (RFC 8252 §7.3)."""
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidRedirectUriError("redirect URI must name a host")
    if not is_valid_host(host):
        raise InvalidRedirectUriError(_invalid_host_message(host))
    if parts.scheme.lower() == "http" and host not in LOOPBACK_REDIRECT_HOSTS:
        raise InvalidRedirectUriError(
            "http redirect URIs are allowed only for 127.0.0.1, [::1] and localhost"
        )


def _invalid_host_message(host: str) -> str:
    suggestion = ascii_form(host) if not host.isascii() else None
    if suggestion and is_valid_host(suggestion):
        return f"redirect URI host must be in its ASCII form: register {suggestion!r}"
    return "redirect URI host must be a valid host name or IP address"


def _check_private_use_redirect(parts: SplitResult) -> None:
    """A reverse-DNS private-use scheme with a path and no authority (RFC 8252 §7.1)."""
    if parts.netloc:
        raise InvalidRedirectUriError(
            "private-use scheme redirect URIs take a path only, e.g. com.example.app:/callback"
        )
    if not parts.path.startswith("/"):
        raise InvalidRedirectUriError("private-use scheme redirect URIs need a path")


def validate_redirect_uri(uri: Any) -> str:
    """Return ``uri`` when it is an acceptable redirect URI; raise ``invalid_redirect_uri``.

    Accepted: ``https`` URIs; ``http`` only for the loopback hosts ``127.0.0.1``, ``[::1]``
    and ``localhost`` (RFC 8252 §7.3); private-use schemes in reverse-DNS form such as
    ``com.example.app:/cb`` (RFC 8252 §7.1). Refused: other schemes (``javascript:``,
    ``data:``, ``file:``…), relative URIs, fragments, wildcards, user information, whitespace.
    """
    parts = _parse_redirect(_check_redirect_text(uri))
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        _check_web_redirect(parts)
    elif _PRIVATE_SCHEME.match(scheme):
        _check_private_use_redirect(parts)
    else:
        raise InvalidRedirectUriError(
            "redirect URI must be https, loopback http, or a reverse-DNS private-use scheme"
        )
    if not uri.isascii():
        raise InvalidRedirectUriError(
            "redirect URI must be ASCII (RFC 3986): percent-encode other characters"
        )
    return str(uri)


def is_acceptable_redirect_uri(uri: str) -> bool:
    """True when ``uri`` passes :func:`validate_redirect_uri` today (rows stored before a rule)."""
    try:
        validate_redirect_uri(uri)
    except InvalidRedirectUriError:
        return False
    return True


def check_application_type(application_type: str, redirect_uris: Collection[str]) -> None:
    """OpenID Connect DCR 1.0 §2: the redirect URIs a ``web`` or ``native`` client may use."""
    for uri in redirect_uris:
        parts = urlsplit(uri)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        loopback = host in LOOPBACK_REDIRECT_HOSTS
        private_use = _PRIVATE_SCHEME.match(scheme) is not None
        if application_type == "web" and (scheme != "https" or loopback):
            raise InvalidRedirectUriError(
                "a web application redirects to https on a non-loopback host; "
                'register loopback or private-use redirect URIs with application_type "native"'
            )
        if application_type == "native" and not ((scheme == "http" and loopback) or private_use):
            raise InvalidRedirectUriError(
                "a native application redirects to loopback http (127.0.0.1, [::1], localhost) "
                'or a private-use scheme; use application_type "web" for https redirect URIs'
            )
