"""Signing keys at rest: a worker with another key-encryption key refuses to start (S56, S59)."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.deployment import initialize
from authserver.storage.signing_keys import KeyDecryptionError


def test_worker_with_other_key_encryption_key_refuses_to_start(
    make_server: Callable[..., AuthServer],
) -> None:
    make_server()  # made the signing key with the test secret
    stranger = make_server(key_encryption_key="another-secret-of-enough-length")
    with pytest.raises(KeyDecryptionError, match="cannot decrypt signing key"):
        initialize(stranger, create_admin=False)


def test_same_key_encryption_key_starts(make_server: Callable[..., AuthServer]) -> None:
    make_server()
    again = make_server()
    assert initialize(again, create_admin=False).created_signing_key is False


def test_short_key_encryption_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        CharterSettings(data_dir=tmp_path, key_encryption_key="short")


def test_sqlite_database_and_key_file_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    server = AuthServer.build(CharterSettings(data_dir=data_dir))
    try:
        initialize(server, create_admin=False)
    finally:
        server.database.dispose()
    for path in (data_dir / "charter.db", data_dir / "key-encryption.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
