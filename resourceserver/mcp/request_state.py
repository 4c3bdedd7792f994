"""Sealed ``requestState``: what a 2026-07-28 ``InputRequiredResult`` hands the client to echo.

MCP 2026-07-28 "Multi Round-Trip Requests" §Server Requirements: the state is attacker-
controlled input, so it is integrity protected and bound to the principal, an expiry and the
originating request; SECURITY-CASES S69 adds that it reveals nothing (encrypted, not only
signed).

Format: ``v1.<key id>.<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>`` (NIST SP 800-38D),
the prefix ``v1.<key id>`` authenticated as associated data. The plaintext is compact JSON:
the subject and client of the principal, the method, the tool/prompt name or resource URI, a
SHA-256 of the arguments, the expiry, and the payload (the answers so far). Keys are 256-bit,
shared by every worker; the first key seals, every key opens, so a key can rotate: add the new
one first, keep the old one until its states have expired (``request_state_ttl_seconds``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from resourceserver.mcp.errors import INVALID_PARAMS, JsonRpcError
from resourceserver.principal import Principal
from resourceserver.records import record

JsonObject = dict[str, Any]

VERSION = "v1"
#: Longest ``requestState`` accepted (and sealed), characters.
MAX_STATE_LENGTH = 256 * 1024
_NONCE_BYTES = 12
_HKDF_INFO = b"charter mcp request state v1"


def derive_key(secret: bytes) -> bytes:
    """A 256-bit sealing key from a deployment secret (HKDF-SHA256, RFC 5869)."""
    if len(secret) < 16:
        raise ValueError("the request-state secret needs at least 128 bits")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)


def key_id(key: bytes) -> str:
    """A short public name of a key (8 base64url characters of its SHA-256)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"kid:" + key).digest()).decode()[:8]


def arguments_digest(arguments: Any) -> str:
    """SHA-256 of the canonical JSON of ``arguments`` (base64url, 22 characters)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@record
class Binding:
    """What a state belongs to: who asked, which request, about what (the arguments' digest is
    computed only when a state is sealed or opened, not on every call)."""

    subject: str
    client_id: str
    method: str
    target: str
    arguments: Any

    @classmethod
    def of(cls, principal: Principal, method: str, target: str, arguments: Any) -> Binding:
        return cls(principal.subject, principal.client_id, method, target, arguments)

    @property
    def digest(self) -> str:
        return arguments_digest(self.arguments)


class RequestStateError(JsonRpcError):
    """A ``requestState`` that cannot be used; ``data.reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(
            INVALID_PARAMS, f"Invalid params: requestState {message}", {"reason": reason}
        )


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RequestStateSealer:
    """Seals and opens request states with the deployment's keys."""

    def __init__(
        self,
        keys: Sequence[bytes],
        *,
        ttl_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys or any(len(key) != 32 for key in keys):
            raise ValueError("request-state keys must be 32 bytes each (AES-256)")
        self._sealing = (key_id(keys[0]), AESGCM(keys[0]))
        self._opening = {key_id(key): AESGCM(key) for key in keys}
        self.ttl = ttl_seconds
        self._clock = clock

    @classmethod
    def ephemeral(cls, ttl_seconds: float = 900.0) -> RequestStateSealer:
        """A sealer with a random key (one process only: its states open nowhere else)."""
        return cls([secrets.token_bytes(32)], ttl_seconds=ttl_seconds)

    def seal(self, binding: Binding, payload: JsonObject) -> str:
        """The opaque state carrying ``payload`` for ``binding``, valid for ``ttl`` seconds."""
        kid, cipher = self._sealing
        document = {
            "sub": binding.subject,
            "cid": binding.client_id,
            "m": binding.method,
            "t": binding.target,
            "a": binding.digest,
            "exp": int(self._clock() + self.ttl),
            "p": payload,
        }
        plaintext = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        prefix = f"{VERSION}.{kid}"
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + cipher.encrypt(nonce, plaintext, prefix.encode())
        state = f"{prefix}.{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}"
        if len(state) > MAX_STATE_LENGTH:
            raise JsonRpcError(
                INVALID_PARAMS,
                "Invalid params: this request gathered more input than one requestState can hold",
            )
        return state

    def open(self, state: object, binding: Binding) -> JsonObject:
        """The payload sealed in ``state`` (raises RequestStateError, a ``-32602``)."""
        document = self._decrypt(state)
        if int(document.get("exp", 0)) < self._clock():
            raise RequestStateError("expired", "has expired; call again without it")
        if (document.get("sub"), document.get("cid")) != (binding.subject, binding.client_id):
            raise RequestStateError("foreign", "was issued to another user or client")
        sealed_for = (document.get("m"), document.get("t"), document.get("a"))
        if sealed_for != (binding.method, binding.target, binding.digest):
            raise RequestStateError(
                "mismatch", "was issued for another request (method, name or arguments differ)"
            )
        payload = document.get("p")
        return payload if isinstance(payload, dict) else {}

    def _decrypt(self, state: object) -> JsonObject:
        if not isinstance(state, str) or not state or len(state) > MAX_STATE_LENGTH:
            raise RequestStateError("invalid", "must be the string this server returned")
        version, _, rest = state.partition(".")
        kid, _, body = rest.partition(".")
        cipher = self._opening.get(kid)
        if version != VERSION or cipher is None:
            raise RequestStateError("invalid", "was not issued by this server")
        try:
            sealed = _b64decode(body)
            nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
            plaintext = cipher.decrypt(nonce, ciphertext, f"{version}.{kid}".encode())
            document = json.loads(plaintext)
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise RequestStateError("invalid", "was altered or truncated") from exc
        if not isinstance(document, dict):
            raise RequestStateError("invalid", "was altered or truncated")
        return document
