"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document; MCP
authorization 2025-11-25 "Client ID Metadata Documents").

A client may use an https URL as its ``client_id``; the document at that URL is its metadata.
Rules enforced here (S50):

- The URL is https (``http`` only for allow-listed hosts when ``ssrf_allow_http`` is set, for
  tests), has a path other than ``/``, no ``.``/``..`` segments, no fragment, no userinfo.
- It is fetched through the SSRF guard (:mod:`authserver.clients.ssrf`), 200 only, no redirects,
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

Fetching never happens inside a database transaction (SQLite allows one writer: a slow or
silent document host must not stall every other request), nor in a worker thread of the
shared pool (S96: each slow fetch used to hold one for up to the 5 s fetch budget, and 40 of
them stalled every request of the process). :func:`prefetch_document` is awaited on the
event loop before the endpoint's blocking work: it reads the cached row and decides in one
short transaction, fetches asynchronously (:func:`authserver.clients.ssrf.async_fetch.
fetch_async`) with no transaction open, and stores the result in another short one.
Inside the endpoint's transaction, :func:`usable_document_client` only reads the cache.

Availability and bounds (S49):

- A stale row is refreshed at most once per :data:`REFRESH_INTERVAL_SECONDS`; while the
  refresh is pending or fails (timeout, network or server error), the stale row is served
  for up to :data:`STALE_GRACE_SECONDS` past its expiry, then the client is unknown. When the
  host answers that the document is gone (a 4xx such as 404) or it is no longer a valid
  document, the stale row stops being served at once.
- New documents (not refreshes) are rate-limited per host
  (:data:`FETCHES_PER_HOST_PER_MINUTE`), so nobody can knock a cached client offline by
  spending its host's budget.
- At most :data:`MAX_DOCUMENTS_PER_HOST` rows per host and :data:`MAX_CACHED_DOCUMENTS` rows
  in all are kept; the reaper purges rows past their expiry and grace.
- Before any fetch (S96, :mod:`authserver.clients.fetch_limits`, per process): a negative
  cache of failed URLs and slow hosts, a per-client-IP limit (429 with ``Retry-After`` past
  it), and per-host and global budgets of fetches in flight (refused at once, or after a
  short wait for a global slot: the client is then unknown, as for a failed fetch).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

import anyio.to_thread
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.clients.fetch_limits import FetchBudgetExhausted, FetchLimits, IpTicket
from authserver.clients.metadata import ClientMetadata, new_client, normalise_registration
from authserver.clients.ssrf.addresses import (
    BadResponseError,
    FetchError,
    FetchPolicy,
    FetchTimeoutError,
    StatusError,
)
from authserver.clients.ssrf.async_fetch import fetch_async
from authserver.clients.ssrf.fetch import FetchResult
from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.errors import OAuthError
from authserver.storage import rate_limits
from authserver.storage.client_rows import ClientState
from authserver.storage.crypto import hash_token
from authserver.storage.models import Client, ClientKind

logger = logging.getLogger("charter.cimd")
#: A cached document client as an ORM row or as the token endpoint's tuple.
_Cached = TypeVar("_Cached", Client, ClientState)

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
#: Most metadata documents cached for one host (one host cannot fill the whole cache).
MAX_DOCUMENTS_PER_HOST = 100
#: How long past its expiry a cached document is still served when it cannot be refreshed.
STALE_GRACE_SECONDS = 86400
#: At most one refresh attempt of a stale document per this many seconds.
REFRESH_INTERVAL_SECONDS = 30
#: Members a metadata document must never carry (draft §4.1: no shared secrets).
FORBIDDEN_MEMBERS = ("client_secret", "client_secret_expires_at")

_MAX_AGE = re.compile(r"(?:^|,)\s*(s-maxage|max-age)\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)

Fetcher = Callable[[str, FetchPolicy], Awaitable[FetchResult]]
#: ``(session, url) -> True`` when a new document must not be cached for ``url`` (S22).
Refusal = Callable[[Session, str], bool]


class MetadataDocumentError(Exception):
    """A URL or document that is not an acceptable client ID metadata document."""


def looks_like_document_url(client_id: str, settings: CharterSettings) -> bool:
    """True when ``client_id`` is meant as a metadata document URL (https, or allowed http)."""
    if client_id.startswith("https://"):
        return True
    return settings.ssrf_allow_http and client_id.startswith("http://")


def _url_parts(url: str) -> SplitResult:
    """The parts of a bounded URL without blanks, fragment or user information, naming a host."""
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
    return parts


def _check_scheme(parts: SplitResult, settings: CharterSettings) -> None:
    """https, or http for an allow-listed host when ``ssrf_allow_http`` is set (tests)."""
    policy = FetchPolicy.from_settings(settings)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    http_allowed = policy.allow_http and policy.host_allowed(parts.hostname or "", port)
    if parts.scheme != "https" and not (parts.scheme == "http" and http_allowed):
        raise MetadataDocumentError("client_id URL must use https")


def _check_path(path: str) -> None:
    """A path other than ``/``, without plain or percent-encoded dot segments."""
    if not path or path == "/":
        raise MetadataDocumentError("client_id URL must have a path")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise MetadataDocumentError("client_id URL must not contain dot segments")
    lowered = path.lower()
    if "%2e" in lowered and any(
        segment.replace("%2e", ".") in (".", "..") for segment in lowered.split("/")
    ):
        raise MetadataDocumentError("client_id URL must not contain encoded dot segments")


def validate_client_id_url(url: str, settings: CharterSettings) -> str:
    """Return ``url`` when it is an acceptable metadata document ``client_id`` (S50)."""
    parts = _url_parts(url)
    _check_scheme(parts, settings)
    _check_path(parts.path)
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


def parse_document(url: str, content: bytes, settings: CharterSettings) -> ClientMetadata:
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


async def fetch_document(
    url: str, settings: CharterSettings, *, fetcher: Fetcher = fetch_async
) -> FetchedDocument:
    """Fetch (awaited, no worker thread) and validate the document at ``url``; raises on any
    failure."""
    validate_client_id_url(url, settings)
    policy = FetchPolicy.from_settings(settings, max_bytes=MAX_DOCUMENT_BYTES)
    result = await fetcher(url, policy)
    metadata = parse_document(url, result.content, settings)
    return FetchedDocument(metadata, cache_seconds(result.headers.get("cache-control")))


def _apply(client: Client, metadata: ClientMetadata, *, now: int, max_age: int) -> None:
    metadata.apply_to(client, now=now, fingerprint=metadata.fingerprint())
    client.expires_at = now + max_age


def is_fresh(row: Client, now: int) -> bool:
    """True while the cached document has not expired."""
    return row.expires_at is not None and row.expires_at > now


def usable_document_client(cached: _Cached | None, now: int) -> _Cached | None:
    """The cached document client to use now, reading only (never fetching).

    Fresh rows, and stale ones up to :data:`STALE_GRACE_SECONDS` past expiry (a refresh that
    is pending, refused or failing must not knock a working client offline).
    """
    if (
        cached is None
        or cached.kind != ClientKind.METADATA_DOCUMENT
        or cached.disabled
        or cached.expires_at is None
    ):
        return None
    if now < cached.expires_at + STALE_GRACE_SECONDS:
        return cached
    return None


def document_host(url: str) -> str:
    """The host a document URL names, lower case, without a trailing dot."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _cached_count(session: Session, host: str | None = None) -> int:
    query = (
        select(func.count()).select_from(Client).where(Client.kind == ClientKind.METADATA_DOCUMENT)
    )
    if host is not None:
        # Every spelling of the host: either scheme, any port, with or without trailing dot.
        patterns = [
            f"{scheme}://{_escape_like(name)}{separator}%"
            for scheme in ("https", "http")
            for name in (host, host + ".")
            for separator in ("/", ":")
        ]
        lowered = func.lower(Client.client_id)
        query = query.where(or_(*(lowered.like(pattern, escape="\\") for pattern in patterns)))
    return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class _Plan:
    """Whether to fetch now; why not (empty when there is nothing to say); until when no fetch
    is needed (a fresh cached row, or one never fetched: registered or disabled; else 0)."""

    fetch: bool
    reason: str = ""
    fresh_until: int = 0


def _plan_fetch(
    server: AuthServer, session: Session, url: str, now: int, refuse: Refusal | None
) -> _Plan:
    """Whether to fetch ``url`` now.

    Runs in a short transaction of its own; counts the attempt (refresh claim or host budget).
    """
    cached = session.get(Client, url)
    if cached is not None:
        if cached.kind != ClientKind.METADATA_DOCUMENT or cached.disabled:
            return _Plan(False, fresh_until=now + MAX_CACHE_SECONDS)  # never fetched
        if is_fresh(cached, now):
            return _Plan(False, fresh_until=cached.expires_at or 0)
        # A refresh: not counted in the host's budget, but one attempt per interval per URL.
        wait = rate_limits.hit(
            session,
            "cimd:refresh:" + hash_token(url)[:40],
            now=now,
            window=REFRESH_INTERVAL_SECONDS,
            limit=1,
        )
        return _Plan(not wait)
    try:
        validate_client_id_url(url, server.settings)
    except MetadataDocumentError as exc:
        return _Plan(False, str(exc))
    if refuse is not None and refuse(session, url):
        return _Plan(False, "the client_id equals a user's id or username")
    reason = _over_budget(session, document_host(url), now)
    return _Plan(not reason, reason)


def _over_budget(session: Session, host: str, now: int) -> str:
    """Why a new document of ``host`` must not be fetched now (counts it), else empty."""
    wait = rate_limits.hit(
        session,
        f"cimd:host:{host}",
        now=now,
        window=60,
        limit=FETCHES_PER_HOST_PER_MINUTE,
    )
    if wait:
        return "too many new metadata documents from this host"
    if _cached_count(session) >= MAX_CACHED_DOCUMENTS:
        return "the metadata document cache is full"
    if _cached_count(session, host) >= MAX_DOCUMENTS_PER_HOST:
        return "too many metadata documents cached for this host"
    return ""


def _store(session: Session, url: str, fetched: FetchedDocument, now: int) -> None:
    """Cache ``fetched`` as the row for ``url`` (insert, or refresh the existing row)."""
    row = session.get(Client, url)
    if row is not None:
        if row.kind == ClientKind.METADATA_DOCUMENT and not row.disabled:
            _apply(row, fetched.metadata, now=now, max_age=fetched.max_age)
        return
    metadata = fetched.metadata
    client = new_client(
        url,
        ClientKind.METADATA_DOCUMENT,
        metadata,
        now=now,
        fingerprint=metadata.fingerprint(),
        expires_at=now + fetched.max_age,
    )
    try:
        with session.begin_nested():
            session.add(client)
    except IntegrityError:
        # Another worker cached the same document first: keep its row.
        logger.info("client metadata document %s was cached concurrently", url)


def _withdrawn(exc: Exception) -> bool:
    """True when the host answered that the document is gone or no longer acceptable (as
    opposed to a timeout, a network or server error, which the grace is for)."""
    if isinstance(exc, StatusError):
        return exc.definitive
    return isinstance(exc, (MetadataDocumentError, ValueError))


def _end_grace(session: Session, url: str, now: int) -> None:
    """Stop serving a stale cached row whose document was withdrawn or became invalid."""
    row = session.get(Client, url)
    if row is not None and row.kind == ClientKind.METADATA_DOCUMENT and not is_fresh(row, now):
        row.expires_at = min(row.expires_at or now, now - STALE_GRACE_SECONDS)


def _remember_failure(limits: FetchLimits, url: str, exc: Exception) -> None:
    """Negative cache: the URL after any failure; its host too when the host itself is slow
    or unreachable (a timeout, or no connection at all), not for an answer such as a 404."""
    host_failed = isinstance(exc, FetchTimeoutError) or (
        isinstance(exc, BadResponseError) and not isinstance(exc, StatusError)
    )
    limits.remember_failure(url, document_host(url) if host_failed else None)


def _plan_in_transaction(server: AuthServer, url: str, refuse: Refusal | None) -> _Plan:
    with server.database.transaction() as session:
        return _plan_fetch(server, session, url, server.now(), refuse)


def _has_usable_row(server: AuthServer, url: str) -> bool:
    """True when ``url`` names a row the endpoint can use without a fetch (registered, or a
    document fresh or within its grace)."""
    with server.database.transaction() as session:
        row = session.get(Client, url)
        if row is None or row.kind != ClientKind.METADATA_DOCUMENT:
            return row is not None
        return usable_document_client(row, server.now()) is not None


def _end_grace_in_transaction(server: AuthServer, url: str) -> None:
    with server.database.transaction() as session:
        _end_grace(session, url, server.now())


def _store_in_transaction(server: AuthServer, url: str, fetched: FetchedDocument) -> None:
    with server.database.transaction() as session:
        _store(session, url, fetched, server.now())


async def prefetch_document(
    server: AuthServer,
    url: str,
    *,
    ip: str,
    refuse: Refusal | None = None,
    fetcher: Fetcher = fetch_async,
) -> int:
    """Make sure ``url`` has a fresh cached row when it can; 0, or the seconds the client at
    ``ip`` must wait (over its fetch limit and no usable row: answer 429, S96).

    Await it on the event loop *before* the endpoint's work (in a worker thread) opens the
    transaction in which :func:`usable_document_client` reads the row. Every in-memory check
    of :mod:`authserver.clients.fetch_limits` comes first (a document known fresh, the
    negative cache, the client IP's limit, a slot of the host's and the global budget), so a
    flood of document URLs costs no database work beyond the endpoint's own. Then the plan
    and, after the fetch, the store run in short transactions in worker threads, as all
    database work does; the fetch itself is awaited with no transaction open and no worker
    thread held. Failures are logged, never raised: the stale row (if any) is then served
    within its grace, otherwise the client is unknown. ``refuse`` vetoes caching a new
    document (S22).
    """
    limits = server.metadata_fetch_limits()
    if limits.known_fresh(url, server.now()):
        return 0
    if limits.failed_recently(url, document_host(url)):
        logger.info("client metadata document %s not fetched: it failed recently", url)
        return 0
    ticket = limits.admit_ip(ip)
    if isinstance(ticket, int):
        if await anyio.to_thread.run_sync(_has_usable_row, server, url):
            return 0
        logger.warning("client metadata document %s refused: too many fetches from %s", url, ip)
        return ticket
    try:
        fetched = await _fetch_within_budgets(server, url, refuse, fetcher, ticket)
    finally:
        ticket.release()
    if fetched is not None:
        await anyio.to_thread.run_sync(_store_in_transaction, server, url, fetched)
        limits.remember_fresh(url, server.now() + fetched.max_age)
    return 0


async def _fetch_within_budgets(
    server: AuthServer, url: str, refuse: Refusal | None, fetcher: Fetcher, ticket: IpTicket
) -> FetchedDocument | None:
    """Plan and fetch ``url`` holding a slot of its host's and of the global budget; None when
    no fetch was made (refunding the IP's ticket) or it failed (logged, remembered)."""
    limits = server.metadata_fetch_limits()
    try:
        async with limits.outbound(document_host(url)):
            plan = await anyio.to_thread.run_sync(_plan_in_transaction, server, url, refuse)
            if plan.fresh_until:
                limits.remember_fresh(url, plan.fresh_until)
            if not plan.fetch:
                ticket.release(refund=True)
                if plan.reason:
                    logger.warning("client metadata document %s refused: %s", url, plan.reason)
                return None
            return await fetch_document(url, server.settings, fetcher=fetcher)
    except FetchBudgetExhausted as exc:
        ticket.release(refund=True)
        logger.warning("client metadata document %s not fetched: %s", url, exc)
    except (MetadataDocumentError, FetchError, ValueError) as exc:
        logger.warning("client metadata document %s refused: %s", url, exc)
        _remember_failure(limits, url, exc)
        if _withdrawn(exc):
            await anyio.to_thread.run_sync(_end_grace_in_transaction, server, url)
    return None
