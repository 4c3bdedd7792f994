"""The authorization server's runtime context: everything endpoints need, built once.

The Jinja2 environment of the HTML pages is made on the first page (:attr:`AuthServer.templates`):
a worker that serves only tokens and MCP never imports Jinja2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from authserver.accounts.passwords import Passwords
from authserver.clients.fetch_limits import FetchLimits
from authserver.config.settings import CharterSettings
from authserver.display import neutral_value
from authserver.storage.audit import JsonLinesSink
from authserver.storage.db import Database
from authserver.storage.signing_keys import KeyStore, load_key_encryption_key

if TYPE_CHECKING:
    from jinja2 import Environment


def make_templates() -> Environment:
    """Jinja2 environment over ``authserver/templates`` with autoescaping on (S55); every value
    shown has its bidirectional controls neutralised (S103)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("authserver", "templates"),
        autoescape=select_autoescape(["html", "xml"], default=True),
        finalize=neutral_value,
    )


@dataclass
class AuthServer:
    """Settings, database, keys, password hasher, clock and templates of one deployment."""

    settings: CharterSettings
    database: Database
    keys: KeyStore
    passwords: Passwords = field(default_factory=Passwords)
    clock: Callable[[], float] = time.time
    #: This process's budgets of metadata document fetches (S96); from the settings if None.
    fetch_limits: FetchLimits | None = None

    @cached_property
    def templates(self) -> Environment:
        """The pages' Jinja2 environment (:func:`make_templates`), made on first use."""
        return make_templates()

    def metadata_fetch_limits(self) -> FetchLimits:
        """The budgets of metadata document fetches of this process (made on first use)."""
        if self.fetch_limits is None:
            self.fetch_limits = FetchLimits.from_settings(self.settings, self.clock)
        return self.fetch_limits

    def now(self) -> int:
        """Current Unix time in whole seconds."""
        return int(self.clock())

    @classmethod
    def build(
        cls,
        settings: CharterSettings,
        *,
        database: Database | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AuthServer:
        """Wire a context from settings (does not touch the schema or create keys)."""
        database = database or Database.from_url(settings.database_url)
        if settings.audit_log_file:
            database.send_audit_to(JsonLinesSink(Path(settings.audit_log_file).expanduser()))
        secret = (
            settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None
        )
        keys = KeyStore(
            database,
            load_key_encryption_key(secret, Path(settings.data_dir)),
            max_token_lifetime=settings.access_token_ttl + settings.leeway_seconds,
            publish_ahead=settings.key_publish_ahead_seconds,
            clock=clock,
        )
        return cls(settings=settings, database=database, keys=keys, clock=clock)
