"""User password hashing with argon2id (RFC 9106 recommended parameters), and the one rule
every new password meets (NIST SP 800-63B §5.1.1.2: a minimum length, no composition rules).

The rule is the same for ``charter users add|passwd`` and the change page of a one-time
password: at least :data:`MIN_PASSWORD_LENGTH` characters, at most :data:`MAX_PASSWORD_LENGTH`.

argon2-cffi is imported on the first hash or verification (a login, a new user), not when the
server is built: a serving worker that only grants tokens never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

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


def new_hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106 §4, the second recommended option)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


class Passwords:
    """Hashes and verifies passwords; verification of an unknown user costs the same."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._given = hasher  # else made by new_hasher() on first use (argon2 loads then)
        self._dummy_hash: str | None = None  # made on first verify: building stays cheap (CLI)

    @property
    def _hasher(self) -> PasswordHasher:
        if self._given is None:
            self._given = new_hasher()
        return self._given

    def hash(self, password: str) -> str:
        """The argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``stored_hash=None`` burns the same time and fails."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        hasher = self._hasher
        if self._dummy_hash is None:  # every first call pays it, known user or not
            self._dummy_hash = hasher.hash(_DUMMY_HASH_INPUT)
        try:
            hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None
