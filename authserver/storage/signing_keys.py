"""Signing keys in SQL: ES256 generation, rotation with overlap, and the JWKS (RFC 7517 §5).

A new key is published (in the JWKS) from its ``created_at`` and signs from ``activates_at``;
a retired key stays published until ``expires_at`` = retirement + the longest token lifetime,
so every token it signed can still be verified (S63). Private keys are stored encrypted with
JWE (``dir`` + ``A256GCM``) under the deployment's key-encryption key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from joserfc import jwe
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import or_, select, text

from authserver.storage.db import Database, is_sqlite
from authserver.storage.models import SigningKey

SIGNING_ALG = "ES256"
KEY_ENCRYPTION_FILE = "key-encryption.key"
_CACHE_SECONDS = 5.0


class KeyDecryptionError(RuntimeError):
    """A stored signing key cannot be opened with this process's key-encryption key."""


def load_key_encryption_key(secret: str | None, data_dir: Path) -> OctKey:
    """The 256-bit key that encrypts private keys at rest.

    From the configured secret (any string; stretched with SHA-256) or, when none is set, from
    ``<data_dir>/key-encryption.key``, created with mode 0600 on first use.
    """
    if secret:
        return OctKey.import_key(hashlib.sha256(secret.encode()).digest())
    path = data_dir / KEY_ENCRYPTION_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(raw + "\n")
    raw_key = base64.urlsafe_b64decode(path.read_text().strip())
    return OctKey.import_key(raw_key)


class KeyStore:
    """Signing keys of one deployment, shared by every worker through the database."""

    def __init__(
        self,
        database: Database,
        encryption_key: OctKey,
        *,
        max_token_lifetime: int,
        publish_ahead: int = 0,
        clock: Callable[[], float],
    ) -> None:
        self._db = database
        self._encryption_key = encryption_key
        self._max_token_lifetime = max_token_lifetime
        self._publish_ahead = publish_ahead
        self._clock = clock
        self._lock = threading.Lock()
        self._cached_signing: tuple[float, ECKey] | None = None
        self._cached_jwks: tuple[float, dict[str, Any]] | None = None

    def _now(self) -> int:
        return int(self._clock())

    def _encrypt(self, key: ECKey) -> str:
        plaintext = json.dumps(key.as_dict(private=True))
        return jwe.encrypt_compact(
            {"alg": "dir", "enc": "A256GCM"}, plaintext, self._encryption_key
        )

    def _decrypt(self, row: SigningKey) -> ECKey:
        try:
            data = jwe.decrypt_compact(row.private_jwk_encrypted, self._encryption_key).plaintext
        except Exception as exc:  # joserfc raises several error types
            raise KeyDecryptionError(
                f"cannot decrypt signing key {row.kid}: the key-encryption key differs from "
                "the one that stored it (set CHARTER_KEY_ENCRYPTION_KEY to the original secret)"
            ) from exc
        if data is None:
            raise RuntimeError(f"signing key {row.kid} decrypted to nothing")
        return ECKey.import_key(json.loads(data))

    def encrypt_secret(self, plaintext: str) -> str:
        """``plaintext`` (a secret Charter must send again, e.g. an upstream client secret)
        encrypted like the private keys: JWE ``dir`` + ``A256GCM`` under the key-encryption key."""
        return jwe.encrypt_compact(
            {"alg": "dir", "enc": "A256GCM"}, plaintext, self._encryption_key
        )

    def decrypt_secret(self, ciphertext: str) -> str:
        """What :meth:`encrypt_secret` encrypted; :class:`KeyDecryptionError` under another key."""
        try:
            data = jwe.decrypt_compact(ciphertext, self._encryption_key).plaintext
        except Exception as exc:  # joserfc raises several error types
            raise KeyDecryptionError(
                "cannot decrypt a stored secret: the key-encryption key differs from the one "
                "that stored it (set CHARTER_KEY_ENCRYPTION_KEY to the original secret)"
            ) from exc
        return (data or b"").decode()

    def _new_row(self, now: int, activates_at: int) -> SigningKey:
        key = ECKey.generate_key("P-256", auto_kid=True)
        public = dict(key.as_dict(private=False))
        public.update({"use": "sig", "alg": SIGNING_ALG})
        return SigningKey(
            kid=key.kid or secrets.token_hex(8),
            alg=SIGNING_ALG,
            public_jwk=public,
            private_jwk_encrypted=self._encrypt(key),
            created_at=now,
            activates_at=activates_at,
            retired_at=None,
            expires_at=None,
        )

    def invalidate_cache(self) -> None:
        """Forget cached keys (after rotation or retirement in this process)."""
        with self._lock:
            self._cached_signing = None
            self._cached_jwks = None

    def ensure_signing_key(self) -> bool:
        """Create a signing key when none can sign; idempotent across workers. True if created."""
        now = self._now()
        with self._db.transaction() as session:
            if not is_sqlite(self._db.engine):
                # Serialise concurrent start-ups of several workers (S59).
                session.execute(text("SELECT pg_advisory_xact_lock(727401)"))
            usable = session.scalars(
                select(SigningKey.kid).where(SigningKey.retired_at.is_(None)).limit(1)
            ).first()
            if usable is not None:
                return False
            session.add(self._new_row(now, now))
        self.invalidate_cache()
        return True

    def rotate(self) -> SigningKey:
        """Add a new key that signs after ``publish_ahead``; the current keys retire then."""
        now = self._now()
        activates_at = now + self._publish_ahead
        with self._db.transaction() as session:
            row = self._new_row(now, activates_at)
            current = session.scalars(
                select(SigningKey).where(SigningKey.retired_at.is_(None))
            ).all()
            for old in current:
                old.retired_at = activates_at
                old.expires_at = activates_at + self._max_token_lifetime
            session.add(row)
        self.invalidate_cache()
        return row

    def retire(self, kid: str, *, immediately: bool = False) -> SigningKey:
        """Stop signing with ``kid`` now.

        It leaves the JWKS after the longest token lifetime, or at once with ``immediately``
        (tokens it signed then fail). When no other key can sign now, a key still waiting to
        activate (a pending rotation) takes over at once, or else a new key is made.
        """
        now = self._now()
        with self._db.transaction() as session:
            row = session.get(SigningKey, kid)
            if row is None:
                raise KeyError(kid)
            row.retired_at = now if row.retired_at is None else min(row.retired_at, now)
            row.expires_at = now if immediately else now + self._max_token_lifetime
            session.flush()
            can_sign_now = session.scalars(
                select(SigningKey.kid)
                .where(SigningKey.activates_at <= now)
                .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
                .limit(1)
            ).first()
            if can_sign_now is None:
                pending = session.scalars(
                    select(SigningKey)
                    .where(SigningKey.retired_at.is_(None), SigningKey.activates_at > now)
                    .order_by(SigningKey.activates_at)
                    .limit(1)
                ).first()
                if pending is not None:
                    pending.activates_at = now
                else:
                    session.add(self._new_row(now, now))
        self.invalidate_cache()
        return row

    def verify_decryptable(self) -> None:
        """Raise :class:`KeyDecryptionError` unless every published key opens with this
        process's key-encryption key (checked at start-up, so that a worker configured with
        another secret refuses to start instead of failing every token request)."""
        now = self._now()
        with self._db.transaction() as session:
            rows = session.scalars(
                select(SigningKey).where(
                    or_(SigningKey.expires_at.is_(None), SigningKey.expires_at > now)
                )
            ).all()
        for row in rows:
            self._decrypt(row)

    def list_keys(self) -> list[SigningKey]:
        """Every key row, newest first."""
        with self._db.transaction() as session:
            return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())))

    def signing_key(self) -> ECKey:
        """The key that signs now: the newest active, unretired key (cached for a few seconds)."""
        wall = self._clock()
        with self._lock:
            if self._cached_signing and wall - self._cached_signing[0] < _CACHE_SECONDS:
                return self._cached_signing[1]
        now = int(wall)
        with self._db.transaction() as session:
            row = session.scalars(
                select(SigningKey)
                .where(SigningKey.activates_at <= now)
                .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
                .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc())
                .limit(1)
            ).first()
        if row is None:
            raise RuntimeError(
                "no signing key: run `charter keys rotate` or restart `charter serve`"
            )
        key = self._decrypt(row)
        with self._lock:
            self._cached_signing = (wall, key)
        return key

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: every key not yet expired (cached for a few seconds)."""
        wall = self._clock()
        with self._lock:
            if self._cached_jwks and wall - self._cached_jwks[0] < _CACHE_SECONDS:
                return self._cached_jwks[1]
        now = int(wall)
        with self._db.transaction() as session:
            rows = session.scalars(
                select(SigningKey)
                .where(or_(SigningKey.expires_at.is_(None), SigningKey.expires_at > now))
                .order_by(SigningKey.created_at.desc())
            ).all()
        document = {"keys": [dict(row.public_jwk) for row in rows]}
        with self._lock:
            self._cached_jwks = (wall, document)
        return document
