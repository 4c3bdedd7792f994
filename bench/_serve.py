"""The token-endpoint floors: ``python -m bench._serve KIND PORT [DATABASE_URL]``.

Kinds:

- ``floor``: the least a token endpoint can do — parse the form and sign an RFC 9068-shaped
  ES256 JWT with joserfc; no client authentication, no storage. The latency floor.
- ``floor-db``: ``floor`` plus one INSERT of the token's ``jti`` per request, on the same kind of
  engine Charter uses (SQLite WAL with ``BEGIN IMMEDIATE``, or PostgreSQL): the floor of an
  issuer that records its tokens.
"""

from __future__ import annotations

import secrets
import sys
import time
from urllib.parse import parse_qsl

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, insert
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authserver.storage.db import make_engine
from bench._harness import ISSUER, RESOURCE

TTL = 3600
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def floor_app(engine: Engine | None) -> Starlette:
    """The peer token endpoint (see the module docstring)."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    metadata = MetaData()
    tokens = Table(
        "bench_tokens",
        metadata,
        Column("jti", String(64), primary_key=True),
        Column("client_id", String(256)),
        Column("issued_at", BigInteger),
        Column("expires_at", BigInteger),
    )
    if engine is not None:
        metadata.create_all(engine)

    def record(jti: str, client_id: str, now: int) -> None:
        assert engine is not None
        with engine.begin() as conn:
            conn.execute(
                insert(tokens).values(
                    jti=jti, client_id=client_id, issued_at=now, expires_at=now + TTL
                )
            )

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        client_id = form.get("client_id", "anonymous")
        now = int(time.time())
        jti = secrets.token_hex(16)
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "aud": RESOURCE,
            "client_id": client_id,
            "scope": form.get("scope", "mcp"),
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": now + TTL,
        }
        header = {"typ": "at+jwt", "alg": "ES256", "kid": key.kid}
        signed = jwt.encode(header, claims, key, algorithms=["ES256"])
        if engine is not None:
            await run_in_threadpool(record, jti, client_id, now)
        body = {"access_token": signed, "token_type": "Bearer", "expires_in": TTL}
        return JSONResponse(body, headers=NO_STORE)

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    database_url = argv[2] if len(argv) > 2 else ""
    if kind == "floor":
        app = floor_app(None)
    elif kind == "floor-db":
        app = floor_app(make_engine(database_url))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
