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

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        """True when every scope in ``required`` was granted."""
        return set(required) <= self.scopes
