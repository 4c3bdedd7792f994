"""Placeholder: the authorize endpoint (being built)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from authserver.context import AuthServer


def routes(server: AuthServer) -> list[BaseRoute]:
    """Routes of this endpoint."""
    return []
