"""The authenticated caller of the MCP endpoint, as an access token describes it (RFC 9068 §2.2)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject, the client it was issued to, and what it may do."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    audience: tuple[str, ...] = field(default=())
    #: The person's user name and name for display (``preferred_username``, ``name``).
    username: str = ""
    name: str = ""
    #: True for a caller without any token (only public tools, prompts and resources).
    anonymous: bool = False

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        """True when every scope in ``required`` was granted."""
        return set(required) <= self.scopes


#: Every caller without an ``Authorization`` header, on a server offering public tools. It holds
#: no scope; sessions it opens are adopted by the first signed-in principal that uses them.
ANONYMOUS = Principal(
    subject="",
    client_id="",
    scopes=frozenset(),
    token_id="",
    expires_at=2**62,
    anonymous=True,
)
