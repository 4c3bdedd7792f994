"""Signing access tokens: compact ES256 JWS (RFC 7515 §7.1, RFC 7518 §3.4, RFC 9068 §2.1).

The header of every token signed by one key is the same ``{"typ": "at+jwt", "alg": "ES256",
"kid"}``, so its encoded segment is made once per key, with the key's ``cryptography`` object;
a token is then the claims' JSON, one ECDSA signature and its ``r || s`` form (RFC 7518 §3.4),
as joserfc's ``jwt.encode`` would make them without its per-call header and registry work.
Tokens are read back with joserfc (:func:`authserver.oauth.tokens.decode_access_token`).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jwk import ECKey

from authserver.storage.signing_keys import SIGNING_ALG

#: ``r`` and ``s`` of a P-256 signature are 32 bytes each (RFC 7518 §3.4).
_P256_INT_BYTES = 32


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class AccessTokenSigner:
    """Signs access tokens with one P-256 key; its header segment made once."""

    def __init__(self, key: ECKey, token_type: str) -> None:
        if key.curve_name != "P-256":
            raise ValueError("access tokens are signed with ES256 (a P-256 key)")
        private = key.get_op_key("sign")
        if not isinstance(private, EllipticCurvePrivateKey):
            raise TypeError("the signing key has no private part")
        self.key = key
        self._private = private
        self._algorithm = ECDSA(SHA256())
        self._prefix = _b64(_json({"typ": token_type, "alg": SIGNING_ALG, "kid": key.kid})) + b"."

    def sign(self, claims: dict[str, Any]) -> str:
        """The compact JWS of ``claims``."""
        signing_input = self._prefix + _b64(_json(claims))
        r, s = decode_dss_signature(self._private.sign(signing_input, self._algorithm))
        signature = r.to_bytes(_P256_INT_BYTES, "big") + s.to_bytes(_P256_INT_BYTES, "big")
        return (signing_input + b"." + _b64(signature)).decode("ascii")
