"""Random tokens and their at-rest hashes (RFC 9700 §4.5, S18, S56).

Every code, token and secret carries 256 bits from :mod:`secrets`; what is stored is its
SHA-256 (these values are high-entropy, so a fast hash suffices; passwords use argon2).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token(nbytes: int = TOKEN_BYTES) -> str:
    """A URL-safe random token of ``nbytes`` bytes of entropy (≥ 128 bits)."""
    if nbytes < 16:
        raise ValueError("tokens need at least 128 bits of entropy")
    return secrets.token_urlsafe(nbytes)


def new_id() -> str:
    """A random identifier for rows (128 bits, hex)."""
    return secrets.token_hex(16)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored instead of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of ``token`` with a stored hash (S20)."""
    if stored_hash is None:
        # Compare against a dummy so that unknown and known clients take the same time.
        hmac.compare_digest(hash_token(token), "0" * 64)
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)
