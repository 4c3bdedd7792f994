"""A tiny OpenID Provider written for the tests (joserfc signs its ID tokens), served by uvicorn
on loopback: the upstream provider of the negative federation cases, where node-oidc-provider
cannot be made to misbehave. It answers discovery and its JWKS, sends every ``/authorize`` at
once back to the redirect URI with a code, and redeems codes at ``/token`` (PKCE S256 and the
client secret checked) for an ID token whose claims and header a test may change first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.live import free_port, serve_app

CLIENT_SECRET = "upstream-secret-for-tests-only"
DROP = object()


@dataclass
class FakeOp:
    """The provider's state: its keys, what it was asked, and how its next ID token looks."""

    client_id: str = "charter-at-fake"
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, auto_kid=True))
    #: Claims merged into the next ID tokens (``DROP`` removes one).
    claims: dict[str, Any] = field(default_factory=dict)
    #: Header members merged into the next ID tokens' headers.
    header: dict[str, Any] = field(default_factory=dict)
    #: Signs with this key instead (e.g. a key not in the JWKS), or an HMAC secret.
    signing_key: Any = None
    #: ``iss`` sent with the authorization response (``None`` sends none).
    response_iss: str | None = "self"
    iss_parameter_supported: bool = True
    metadata_extra: dict[str, Any] = field(default_factory=dict)
    #: What ``/userinfo`` answers (offered in the metadata only when set).
    userinfo: dict[str, Any] | None = None
    subject: str = "upstream-alice"
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: int = 0
    jwks_requests: int = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": self.iss_parameter_supported,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            **({"userinfo_endpoint": self.issuer + "/userinfo"} if self.userinfo else {}),
            **self.metadata_extra,
        }

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "preferred_username": "alice",
            "name": "Alice Upstream",
            "email": "alice@example.com",
            "email_verified": True,
        }
        claims.update(self.claims)
        claims = {name: value for name, value in claims.items() if value is not DROP}
        key = self.signing_key or self.key
        header = {"alg": "RS256", "kid": self.key.kid, **self.header}
        if header["alg"] == "none":
            return _compact(header, claims, None)
        if isinstance(key, bytes):  # an HMAC secret (e.g. the public key's PEM: RFC 8725 §2.1)
            return _compact(header, claims, key)
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])

    def _refusal(
        self, request: Request, form: dict[str, Any], asked: dict[str, str] | None
    ) -> Response | None:
        """Why the token request fails (RFC 6749 §5.2), or None."""
        if asked is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if not _client_authenticated(request, form, self.client_id):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if _s256(str(form.get("code_verifier"))) != asked["code_challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return None

    def app(self) -> Starlette:
        async def discovery(_request: Request) -> Response:
            return JSONResponse(self.metadata())

        async def jwks(_request: Request) -> Response:
            self.jwks_requests += 1
            return JSONResponse({"keys": [self.key.as_dict(private=False)]})

        async def authorize(request: Request) -> Response:
            params = dict(request.query_params)
            code = secrets.token_urlsafe(16)
            self.codes[code] = params
            answer = {"code": code, "state": params["state"]}
            if self.response_iss is not None:
                answer["iss"] = self.issuer if self.response_iss == "self" else self.response_iss
            return RedirectResponse(params["redirect_uri"] + "?" + urlencode(answer), 302)

        async def token(request: Request) -> Response:
            self.token_requests += 1
            form = dict(await request.form())
            asked = self.codes.pop(str(form.get("code")), None)
            refusal = self._refusal(request, form, asked)
            if refusal is not None or asked is None:
                return refusal or JSONResponse({"error": "invalid_grant"}, status_code=400)
            body = {
                "access_token": "upstream-access",
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(asked["nonce"]),
            }
            return JSONResponse(body)

        async def userinfo(request: Request) -> Response:
            if request.headers.get("authorization") != "Bearer upstream-access":
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse(self.userinfo or {})

        return Starlette(
            routes=[
                Route("/userinfo", userinfo),
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


def _client_authenticated(request: Request, form: dict[str, Any], client_id: str) -> bool:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        pair = base64.b64decode(header[6:]).decode()
        return pair == f"{client_id}:{CLIENT_SECRET}"
    return form.get("client_id") == client_id and form.get("client_secret") == CLIENT_SECRET


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWS by hand: unsigned (``alg: none``) or HMAC-SHA256 with ``secret`` (which joserfc
    rightly refuses to do with a public key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@contextmanager
def run_fake_op(**options: Any) -> Iterator[FakeOp]:
    """Serve a :class:`FakeOp` on a free loopback port for the length of a test."""
    op = FakeOp(**options)
    port = free_port()
    op.issuer = f"http://127.0.0.1:{port}"
    with serve_app(op.app(), port=port):
        yield op
