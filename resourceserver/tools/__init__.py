"""The built-in tools of a Charter deployment: ``whoami`` and per-user notes."""

from __future__ import annotations

from sqlalchemy import Engine

from resourceserver.mcp.registry import Registry
from resourceserver.tools import notes, whoami


def builtin_registry(engine: Engine, *, name: str = "charter") -> Registry:
    """A registry holding the built-in tools; notes are stored through ``engine``."""
    registry = Registry(name=name)
    whoami.register(registry)
    notes.register(registry, engine)
    return registry


__all__ = ["builtin_registry"]
