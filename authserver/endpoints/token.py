"""The token endpoint (RFC 6749 §3.2, §5; OAuth 2.1 §3.2).

POST with an ``application/x-www-form-urlencoded`` body only; each parameter at most once
(``resource`` may repeat only to be refused as ``invalid_target``, RFC 8707 §2); credentials
never in the query (S19). Every response carries ``Cache-Control: no-store`` and
``Pragma: no-cache``; CORS is allowed (S8). A metadata document ``client_id`` is fetched
first, awaited (:func:`authserver.clients.store.prefetch_client`; past the client IP's fetch
limit: 429 ``slow_down`` with ``Retry-After``, S96); the grant work then runs in one of the
endpoint's own threads (:mod:`authserver.endpoints.grant_threads`,
:func:`authserver.oauth.adapter.token_response`).

The form is read by :func:`authserver.endpoints.bodies.read_oauth_form`.
"""

from __future__ import annotations

import weakref

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authserver.clients.store import prefetch_client
from authserver.context import AuthServer
from authserver.endpoints.bodies import read_oauth_form
from authserver.endpoints.client_address import UNKNOWN
from authserver.endpoints.cors import allow_cors
from authserver.endpoints.grant_threads import GrantThreads
from authserver.endpoints.responses import error_response, method_not_allowed
from authserver.errors import NO_STORE_HEADERS, InvalidRequestError, OAuthError, SlowDownError
from authserver.oauth.adapter import token_response
from authserver.ops.metrics import count_token_request
from authserver.ops.tracing import end_token_span, token_span


def routes(server: AuthServer) -> list[BaseRoute]:
    """``/token`` (POST; GET answers 405; OPTIONS for CORS preflights)."""
    threads = GrantThreads(server.database)

    async def token(request: Request) -> Response:
        if request.method != "POST":
            return method_not_allowed("POST")
        with token_span() as span:
            try:
                parsed = await read_oauth_form(request)
                if not parsed.form.get("grant_type"):
                    raise InvalidRequestError("grant_type is required")
                wait = await prefetch_client(
                    server, parsed.form.get("client_id") or "", parsed.ip or UNKNOWN
                )
                if wait:
                    raise SlowDownError(
                        wait, "too many client metadata document fetches, retry later"
                    )
                status, body = await threads.run(
                    token_response,
                    server,
                    parsed.form,
                    parsed.resources,
                    parsed.headers,
                    ip=parsed.ip,
                )
            except OAuthError as exc:
                count_token_request(None, exc.error)
                end_token_span(span, None, exc.error)
                return error_response(exc)
            failed = str(body.get("error") or "error") if status >= 400 else None
            count_token_request(parsed.form.get("grant_type"), failed)
            end_token_span(span, parsed.form.get("grant_type"), failed)
            return JSONResponse(body, status_code=status, headers=dict(NO_STORE_HEADERS))

    endpoint = allow_cors(token, ["POST"])
    weakref.finalize(endpoint, threads.close)
    return [Route("/token", endpoint, methods=["GET", "POST", "OPTIONS"])]
