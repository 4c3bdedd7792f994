"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document; MCP
authorization 2025-11-25 "Client ID Metadata Documents").

A client may use an https URL as its ``client_id``; the document at that URL is its metadata.
Rules enforced here (S50):

- The URL is https (``http`` only for allow-listed hosts when ``ssrf_allow_http`` is set, for
  tests), has a path other than ``/``, no ``.``/``..`` segments, no fragment, no userinfo.
- It is fetched through the SSRF guard (:mod:`authserver.ssrf`), 200 only, no redirects,
  at most :data:`MAX_DOCUMENT_BYTES`, as a JSON object.
- The document's ``client_id`` equals the URL exactly (string comparison).
- It lists valid ``redirect_uris``; the authorization endpoint then accepts only those.
- Shared-secret methods (``client_secret_*``) and ``client_secret`` members are refused;
  only ``none`` is supported (this server does not verify ``private_key_jwt``), so metadata
  document clients are public clients.
- Unknown members are ignored; unknown scopes are dropped (the document is written for many
  servers).

The validated document is cached as a :class:`Client` row of kind ``metadata_document`` whose
``expires_at`` follows ``Cache-Control: max-age`` bounded to [5 min, 24 h] (default 1 h).
A stale row is refetched; when that fails the client is unknown. The cache is bounded: new
fetches are rate-limited per host, at most :data:`MAX_CACHED_DOCUMENTS` rows are kept, and
the reaper purges expired rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver import ratelimit
from authserver.client_metadata import ClientMetadata, normalise_registration
from authserver.context import AuthServer
from authserver.errors import OAuthError
from authserver.settings import AuthServerSettings
from authserver.ssrf import FetchError, FetchPolicy, FetchResult, fetch
from authserver.storage.models import Client

logger = logging.getLogger("charter.cimd")

KIND = "metadata_document"
#: Largest metadata document accepted, bytes (the draft suggests about 5 KiB).
MAX_DOCUMENT_BYTES = 5 * 1024
MIN_CACHE_SECONDS = 300
MAX_CACHE_SECONDS = 86400
DEFAULT_CACHE_SECONDS = 3600
#: New document fetches allowed per host per minute (bounds the cache's growth).
FETCHES_PER_HOST_PER_MINUTE = 30
#: Most metadata documents cached at once; beyond it, new documents are refused until the
#: reaper purges expired ones.
MAX_CACHED_DOCUMENTS = 10_000
#: Members a metadata document must never carry (draft §4.1: no shared secrets).
FORBIDDEN_MEMBERS = ("client_secret", "client_secret_expires_at")

_MAX_AGE = re.compile(r"(?:^|,)\s*(s-maxage|max-age)\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)

Fetcher = Callable[[str, FetchPolicy], FetchResult]


class MetadataDocumentError(Exception):
    """A URL or document that is not an acceptable client ID metadata document."""


def looks_like_document_url(client_id: str, settings: AuthServerSettings) -> bool:
    """True when ``client_id`` is meant as a metadata document URL (https, or allowed http)."""
    if client_id.startswith("https://"):
        return True
    return settings.ssrf_allow_http and client_id.startswith("http://")


def validate_client_id_url(url: str, settings: AuthServerSettings) -> str:
    """Return ``url`` when it is an acceptable metadata document ``client_id`` (S50)."""
    if len(url) > 2048:
        raise MetadataDocumentError("client_id URL is too long")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise MetadataDocumentError("client_id URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise MetadataDocumentError("client_id is not a valid URL") from exc
    if "#" in url:
        raise MetadataDocumentError("client_id URL must not contain a fragment")
    if "@" in parts.netloc:
        raise MetadataDocumentError("client_id URL must not contain user information")
    if not parts.hostname:
        raise MetadataDocumentError("client_id URL must name a host")
    policy = FetchPolicy.from_settings(settings)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    http_allowed = policy.allow_http and policy.host_allowed(parts.hostname, port)
    if parts.scheme != "https" and not (parts.scheme == "http" and http_allowed):
        raise MetadataDocumentError("client_id URL must use https")
    if not parts.path or parts.path == "/":
        raise MetadataDocumentError("client_id URL must have a path")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise MetadataDocumentError("client_id URL must not contain dot segments")
    lowered = parts.path.lower()
    if "%2e" in lowered and any(
        segment.replace("%2e", ".") in (".", "..") for segment in lowered.split("/")
    ):
        raise MetadataDocumentError("client_id URL must not contain encoded dot segments")
    return url


def cache_seconds(cache_control: str | None) -> int:
    """Seconds to cache a document from its ``Cache-Control`` header, bounded."""
    if not cache_control:
        return DEFAULT_CACHE_SECONDS
    match = _MAX_AGE.search(cache_control)
    if match is None:
        directives = {part.strip().lower() for part in cache_control.split(",")}
        if directives & {"no-store", "no-cache"}:
            return MIN_CACHE_SECONDS
        return DEFAULT_CACHE_SECONDS
    return max(MIN_CACHE_SECONDS, min(MAX_CACHE_SECONDS, int(match.group(2))))


def parse_document(url: str, content: bytes, settings: AuthServerSettings) -> ClientMetadata:
    """Validate a fetched document for ``url``; raises :class:`MetadataDocumentError`."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataDocumentError("the document is not JSON") from exc
    if not isinstance(document, dict):
        raise MetadataDocumentError("the document is not a JSON object")
    if document.get("client_id") != url:
        raise MetadataDocumentError("the document's client_id does not equal its URL")
    for member in FORBIDDEN_MEMBERS:
        if member in document:
            raise MetadataDocumentError(f"the document must not contain {member}")
    method = document.get("token_endpoint_auth_method", "none")
    if isinstance(method, str) and method.startswith("client_secret"):
        raise MetadataDocumentError("shared-secret authentication methods are not allowed")
    if not document.get("redirect_uris"):
        raise MetadataDocumentError("the document must list redirect_uris")
    try:
        return normalise_registration(
            document,
            scopes_supported=settings.scopes_supported,
            auth_methods=("none",),
            default_auth_method="none",
            drop_unknown_scopes=True,
        )
    except OAuthError as exc:
        raise MetadataDocumentError(exc.description or exc.error) from exc


@dataclass(frozen=True)
class FetchedDocument:
    """A validated document and how long it may be cached."""

    metadata: ClientMetadata
    max_age: int


def fetch_document(
    url: str, settings: AuthServerSettings, *, fetcher: Fetcher = fetch
) -> FetchedDocument:
    """Fetch and validate the document at ``url``; raises on any failure."""
    validate_client_id_url(url, settings)
    policy = FetchPolicy.from_settings(settings, max_bytes=MAX_DOCUMENT_BYTES)
    result = fetcher(url, policy)
    metadata = parse_document(url, result.content, settings)
    return FetchedDocument(metadata, cache_seconds(result.headers.get("cache-control")))


def _apply(client: Client, metadata: ClientMetadata, *, now: int, max_age: int) -> None:
    client.client_name = metadata.client_name
    client.redirect_uris = list(metadata.redirect_uris)
    client.grant_types = list(metadata.grant_types)
    client.response_types = list(metadata.response_types)
    client.token_endpoint_auth_method = metadata.token_endpoint_auth_method
    client.scope = metadata.scope
    client.client_metadata = metadata.to_dict()
    client.metadata_fingerprint = metadata.fingerprint()
    client.updated_at = now
    client.expires_at = now + max_age


def _cached_count(session: Session) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Client).where(Client.kind == KIND)) or 0
    )


def load_document_client(
    server: AuthServer,
    session: Session,
    url: str,
    cached: Client | None,
    *,
    fetcher: Fetcher = fetch,
) -> Client | None:
    """The client for a metadata document URL: the cached row while fresh, else a new fetch.

    Returns None (and logs why) when the URL or document is unacceptable or the fetch fails,
    also when a stale cached row cannot be refreshed.
    """
    now = server.now()
    if cached is not None and cached.expires_at is not None and cached.expires_at > now:
        return cached
    settings = server.settings
    try:
        host = (urlsplit(url).hostname or "").lower()
        wait = ratelimit.hit(
            session,
            f"cimd:host:{host}",
            now=now,
            window=60,
            limit=FETCHES_PER_HOST_PER_MINUTE,
        )
        if wait:
            raise MetadataDocumentError("too many metadata document fetches for this host")
        if cached is None and _cached_count(session) >= MAX_CACHED_DOCUMENTS:
            raise MetadataDocumentError("the metadata document cache is full")
        fetched = fetch_document(url, settings, fetcher=fetcher)
    except (MetadataDocumentError, FetchError, ValueError) as exc:
        logger.warning("client metadata document %s refused: %s", url, exc)
        return None
    if cached is not None:
        _apply(cached, fetched.metadata, now=now, max_age=fetched.max_age)
        session.flush()
        return cached
    client = Client(
        client_id=url,
        kind=KIND,
        secret_hash=None,
        secret_expires_at=0,
        registration_token_hash=None,
        created_at=now,
        last_used_at=None,
        disabled=False,
        registered_from=None,
    )
    _apply(client, fetched.metadata, now=now, max_age=fetched.max_age)
    try:
        with session.begin_nested():
            session.add(client)
    except IntegrityError:
        # Another worker cached the same document first: use its row.
        existing = session.get(Client, url)
        if existing is None or existing.kind != KIND or existing.disabled:
            return None
        return existing
    return client
