"""Redirect URI matching and authorization responses (RFC 9700 §4.1.3, RFC 8252 §7.3, RFC 9207).

A requested ``redirect_uri`` must equal a registered one character for character (S1). The one
exception is a loopback URI (``http://127.0.0.1``, ``http://[::1]``, ``http://localhost``), whose
port may differ because native apps listen on an ephemeral port (RFC 8252 §7.3); its scheme,
host, path and query still compare exactly (S2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from authserver.clients.hosts import is_valid_host

LOOPBACK_NETLOC = re.compile(
    r"^(?P<host>127\.0\.0\.1|\[::1\]|localhost)(?::(?P<port>[0-9]{1,5}))?$"
)
MAX_REDIRECT_URI_LENGTH = 2048
_SCHEME_SOURCE = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")


@dataclass(frozen=True)
class RedirectMatch:
    """The redirect URI to use and the registered entry it matched."""

    redirect_uri: str
    registered: str
    sent: bool


def _loopback_without_port(uri: str) -> str | None:
    """``uri`` with its port removed when it is an ``http`` loopback URI, else None."""
    if not uri.startswith("http://"):
        return None
    rest = uri[len("http://") :]
    end = len(rest)
    for mark in "/?#":
        position = rest.find(mark)
        if position != -1:
            end = min(end, position)
    match = LOOPBACK_NETLOC.match(rest[:end])
    if match is None:
        return None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    return "http://" + match.group("host") + rest[end:]


def is_loopback_redirect(uri: str) -> bool:
    """True for an ``http`` redirect URI on 127.0.0.1, [::1] or localhost."""
    return _loopback_without_port(uri) is not None


def match_redirect_uri(registered: Sequence[str], requested: str | None) -> RedirectMatch | None:
    """The redirect to use for ``requested`` (None when it was omitted), or None when it fails.

    Omitting it is allowed only when exactly one URI is registered (S3).
    """
    if requested is None:
        if len(registered) == 1:
            return RedirectMatch(registered[0], registered[0], sent=False)
        return None
    if not requested or len(requested) > MAX_REDIRECT_URI_LENGTH or "#" in requested:
        return None
    if requested in registered:
        return RedirectMatch(requested, requested, sent=True)
    portless = _loopback_without_port(requested)
    if portless is None:
        return None
    for candidate in registered:
        if _loopback_without_port(candidate) == portless:
            return RedirectMatch(requested, candidate, sent=True)
    return None


def response_url(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` added to its query (RFC 6749 §4.1.2, query response mode).

    Values are only ever URL-encoded, never interpreted; ``None`` values are left out.
    """
    parts = urlsplit(redirect_uri)
    added = urlencode([(key, value) for key, value in params.items() if value is not None])
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def csp_sources(redirect_uri: str) -> list[str]:
    """The CSP source expressions (CSP Level 3 §2.3.1) that allow a navigation to ``redirect_uri``.

    An ``http(s)`` URI gives its origin; a private-use scheme (``com.example.app:/cb``) gives the
    scheme source ``com.example.app:``. Built from the parsed, re-checked parts — never from the
    stored text — so a value stored before the host rules (S101) gives no source at all rather
    than a broken or extended header.
    """
    try:
        parts = urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        return []
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme in ("http", "https"):
        if not is_valid_host(host):
            return []
        shown = f"[{host}]" if ":" in host else host
        return [f"{scheme}://{shown}" + (f":{port}" if port is not None else "")]
    if _SCHEME_SOURCE.match(scheme) and not parts.netloc:
        return [f"{scheme}:"]
    return []


def display_host(redirect_uri: str) -> str:
    """What the consent page names as the destination: the host, or the scheme for apps."""
    parts = urlsplit(redirect_uri)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return parts.hostname
    return f"{parts.scheme}:"
