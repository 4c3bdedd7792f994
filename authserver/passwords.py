"""User password hashing with argon2id (RFC 9106 recommended parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_DUMMY_HASH_INPUT = "charter-dummy-password"


class Passwords:
    """Hashes and verifies passwords; verification of an unknown user costs the same."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None  # made on first verify: building stays cheap (CLI)

    def hash(self, password: str) -> str:
        """The argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``stored_hash=None`` burns the same time and fails."""
        if self._dummy_hash is None:  # every first call pays it, known user or not
            self._dummy_hash = self._hasher.hash(_DUMMY_HASH_INPUT)
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None
