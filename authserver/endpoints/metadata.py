"""Authorization server metadata (RFC 8414 §3) and its OpenID discovery alias
(``prompt_values_supported``: Initiating User Registration via OpenID Connect 1.0 §4.2).

Served at ``/.well-known/oauth-authorization-server`` and ``/.well-known/openid-configuration``,
and at their path-inserted forms when the issuer has a path (RFC 8414 §3.1).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.clients.credentials import NONE, SECRET_METHODS
from authserver.context import AuthServer
from authserver.endpoints.cors import allow_cors
from authserver.oauth.authorization_request import PROMPTS
from authserver.oauth.grants.registry import (
    registered_grant_types,
    registered_response_types,
    token_endpoint_auth_methods,
)

WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


def metadata_document(server: AuthServer) -> dict[str, Any]:
    """The metadata JSON; ``issuer`` is exactly the configured issuer."""
    settings = server.settings
    url = settings.endpoint_url
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "jwks_uri": url("/jwks.json"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "scopes_supported": list(settings.scopes_supported),
        "response_types_supported": registered_response_types(),
        "response_modes_supported": ["query"],
        "grant_types_supported": registered_grant_types(),
        "token_endpoint_auth_methods_supported": token_endpoint_auth_methods(),
        "revocation_endpoint_auth_methods_supported": [NONE, *SECRET_METHODS],
        "introspection_endpoint_auth_methods_supported": list(SECRET_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": settings.client_id_metadata_documents,
        "resource_indicators_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "ui_locales_supported": ["en"],
        # An OpenID Connect Discovery 1.0 field defined by "Initiating User Registration via
        # OpenID Connect 1.0" §4.2; we list the OpenID Connect Core §3.1.2.1 values we honour.
        "prompt_values_supported": list(PROMPTS),
    }
    if settings.registration_open:
        document["registration_endpoint"] = url("/register")
    return document


def metadata_routes(server: AuthServer) -> list[BaseRoute]:
    """Routes for the root and the path-inserted metadata URLs."""

    async def metadata(_request: Request) -> Response:
        return JSONResponse(metadata_document(server), headers={"Cache-Control": "max-age=300"})

    endpoint = allow_cors(metadata, ["GET"])
    paths = list(WELL_KNOWN)
    if server.settings.issuer_path:
        paths += [base + server.settings.issuer_path for base in WELL_KNOWN]
    return [Route(path, endpoint, methods=["GET", "OPTIONS"]) for path in paths]
