"""User password hashing with argon2id (RFC 9106 recommended parameters), and the one rule
every new password meets (NIST SP 800-63B §5.1.1.2: a minimum length, no composition rules).

The rule is the same for ``charter users add|passwd`` and the change page of a one-time
password: at least :data:`MIN_PASSWORD_LENGTH` characters, at most :data:`MAX_PASSWORD_LENGTH`.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_DUMMY_HASH_INPUT = "charter-dummy-password"
#: Shortest new password, in characters.
MIN_PASSWORD_LENGTH = 8
#: Longest password, in characters (longer ones only cost hashing time).
MAX_PASSWORD_LENGTH = 1024


def new_password_problem(password: str) -> str | None:
    """What is wrong with ``password`` as a new password (a sentence), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password must have at most {MAX_PASSWORD_LENGTH} characters."
    return None


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
