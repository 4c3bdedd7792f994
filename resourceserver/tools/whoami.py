"""``whoami``: what the access token says about the caller (RFC 9068 §2.2 claims, as a tool)."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from resourceserver.mcp.context import Context
from resourceserver.mcp.registry import Registry


class Identity(BaseModel):
    """The caller as the resource server sees it."""

    subject: str = Field(description="The user the token was issued for (sub).")
    username: str | None = Field(
        default=None, description="The user's name on the authorization server, if it says."
    )
    name: str | None = Field(default=None, description="The person's full name, if known.")
    client_id: str = Field(description="The OAuth client that holds the token.")
    scopes: list[str] = Field(description="Granted scopes, sorted.")
    expires_at: int = Field(description="Token expiry, seconds since the epoch.")
    expires_in: int = Field(description="Seconds until the token expires.")


def register(registry: Registry) -> None:
    """Add ``whoami`` to ``registry`` (async: it does no I/O, so it runs without a thread hop)."""

    @registry.tool(scopes={"mcp"}, annotations={"readOnlyHint": True, "openWorldHint": False})
    async def whoami(ctx: Context) -> Identity:
        """Show who you are: subject, user name, client id, granted scopes and token expiry."""
        principal = ctx.principal
        return Identity(
            subject=principal.subject,
            username=principal.username or None,
            name=principal.name or None,
            client_id=principal.client_id,
            scopes=sorted(principal.scopes),
            expires_at=principal.expires_at,
            expires_in=max(0, principal.expires_at - int(time.time())),
        )
