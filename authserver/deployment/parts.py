"""What the deployment's builders share: the resource server's settings and transport options
derived from the deployment's settings, the key sealing MCP ``requestState``, and the tool
registry (built-in tools plus the user's modules)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import Engine

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.storage.signing_keys import load_key_encryption_key
from resourceserver.mcp.registry import Registry, ToolModuleError, load_tool_modules
from resourceserver.mcp.request_state import derive_key
from resourceserver.mcp.signature import DefinitionError
from resourceserver.mcp.transport import TransportOptions
from resourceserver.settings import ResourceServerSettings
from resourceserver.tools import builtin_registry

#: What :func:`build_registry` raises for a user tool module that cannot be used.
TOOL_MODULE_ERRORS: tuple[type[Exception], ...] = (ToolModuleError, DefinitionError)
#: How long the in-process JWKS view is cached by the verifier (the key store caches too).
LOCAL_JWKS_CACHE_SECONDS = 5.0


def resource_settings_for(settings: CharterSettings) -> ResourceServerSettings:
    """The resource server's settings: every field it shares with the deployment's settings
    by name (one issuer, one origin, one scope list, one leeway …)."""
    values = settings.values_for(ResourceServerSettings.model_fields)
    values["scopes_supported"] = settings.default_server_scopes
    return ResourceServerSettings(
        **values,
        # A local key view is cheap to reload: allow it soon after a rotation.
        jwks_refresh_min_interval=LOCAL_JWKS_CACHE_SECONDS,
    )


def transport_options_for(settings: CharterSettings) -> TransportOptions:
    """The Streamable HTTP transport's options: every field it shares with the settings."""
    names = [option.name for option in dataclasses.fields(TransportOptions)]
    return TransportOptions(**settings.values_for(names))


def request_state_keys(settings: CharterSettings) -> list[bytes]:
    """The key sealing MCP ``requestState``: HKDF-SHA256 of the key-encryption key."""
    secret = settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None
    encryption_key = load_key_encryption_key(secret, Path(settings.data_dir))
    return [derive_key(encryption_key.raw_value)]


def build_registry(server: AuthServer | Engine, tool_modules: tuple[str, ...]) -> Registry:
    """The built-in tools plus every user module named in ``tool_modules``."""
    engine = server if isinstance(server, Engine) else server.database.engine
    registry = builtin_registry(engine)
    return load_tool_modules(tool_modules, into=registry)
