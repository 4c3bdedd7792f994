"""JwtTokenVerifier: RFC 9068 §4 validation, RFC 8725 hardening (SECURITY-CASES S32-S40)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, Key, RSAKey
from joserfc.jws import JWSRegistry

from resourceserver.errors import InvalidTokenError
from resourceserver.verifier import JwtTokenVerifier
from tests.support.resource_auth import (
    ISSUER,
    RESOURCE,
    START,
    CountingKeySource,
    FakeClock,
    MemoryRevocations,
    make_settings,
    make_verifier,
)
from tests.support.tokens import (
    b64url,
    compact,
    jwks_of,
    make_signing_key,
    mint_access_token,
)


@pytest.fixture
def key() -> Key:
    return make_signing_key("k1")


@pytest.fixture
def keys(key: Key) -> CountingKeySource:
    return CountingKeySource(jwks_of(key))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(keys: CountingKeySource, clock: FakeClock) -> JwtTokenVerifier:
    return make_verifier(make_settings(), keys, clock)


def mint(key: Key, **kwargs: Any) -> str:
    kwargs.setdefault("issuer", ISSUER)
    kwargs.setdefault("audience", RESOURCE)
    kwargs.setdefault("now", START)
    return mint_access_token(key, **kwargs)


async def rejected(verifier: JwtTokenVerifier, token: str) -> InvalidTokenError:
    with pytest.raises(InvalidTokenError) as info:
        await verifier.verify(token)
    return info.value


async def test_valid_token_gives_principal(key: Key, verifier: JwtTokenVerifier) -> None:
    token = mint(key, subject="bob", client_id="c-9", scope="mcp notes:read")
    principal = await verifier.verify(token)
    assert principal.subject == "bob"
    assert principal.client_id == "c-9"
    assert principal.scopes == frozenset({"mcp", "notes:read"})
    assert principal.expires_at == int(START) + 300
    assert principal.audience == (RESOURCE,)
    assert principal.token_id


@pytest.mark.parametrize(
    "claim", ["iss", "aud", "exp", "iat", "sub", "client_id", "jti"], ids=lambda c: f"no-{c}"
)
async def test_required_claims(key: Key, verifier: JwtTokenVerifier, claim: str) -> None:
    await rejected(verifier, mint(key, claim_overrides={claim: None}))


@pytest.mark.parametrize(
    "overrides",
    [{"sub": ""}, {"sub": 7}, {"client_id": ["c"]}, {"jti": None}, {"scope": ["mcp"]}],
)
async def test_claim_types(key: Key, verifier: JwtTokenVerifier, overrides: dict[str, Any]) -> None:
    await rejected(verifier, mint(key, claim_overrides=overrides))


@pytest.mark.parametrize(
    "audience",
    [
        "https://other.example.com/mcp",
        ["https://other.example.com/mcp"],
        f"{RESOURCE}/",
        RESOURCE.upper(),
        "https://mcp.example.com",
        [],
    ],
)
async def test_s32_audience_of_another_resource_rejected(
    key: Key, verifier: JwtTokenVerifier, audience: str | list[str]
) -> None:
    error = await rejected(verifier, mint(key, audience=audience))
    assert error.error_code == "invalid_token"
    assert error.status_code == 401


async def test_s32_audience_list_containing_resource_accepted(
    key: Key, verifier: JwtTokenVerifier
) -> None:
    principal = await verifier.verify(mint(key, audience=["https://other.example", RESOURCE]))
    assert principal.audience == ("https://other.example", RESOURCE)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", "ES256 "])
@pytest.mark.parametrize("signature", [b"", b"\x00", b"not-a-signature"])
async def test_s33_alg_none_and_variants_rejected(
    key: Key, verifier: JwtTokenVerifier, alg: str, signature: bytes
) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    claims = json.loads(base64.urlsafe_b64decode(mint(key).split(".")[1] + "=="))
    await rejected(verifier, compact(header, claims, signature))


async def test_s33_unsigned_token_rejected_even_if_structurally_fine(
    key: Key, verifier: JwtTokenVerifier
) -> None:
    valid = mint(key)
    header = {"alg": "none", "typ": "at+jwt", "kid": key.kid}
    unsigned = b64url(json.dumps(header)) + "." + valid.split(".")[1] + "."
    await rejected(verifier, unsigned)


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return value


async def test_s34_hs256_signed_with_the_public_key_rejected(
    key: Key, verifier: JwtTokenVerifier
) -> None:
    claims = claims_of(mint(key))
    public_pem = ECKey.import_key(key.as_dict(private=False)).as_pem()
    public_jwk = json.dumps(jwks_of(key)["keys"][0]).encode()
    for secret in (public_pem, public_jwk, b""):
        for alg in ("HS256", "hs256"):
            header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
            await rejected(verifier, hs256(header, claims, secret))


@pytest.mark.parametrize("alg", ["RS256", "PS256", "RS384"])
async def test_s34_rsa_algorithms_off_the_allowlist_rejected(clock: FakeClock, alg: str) -> None:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa", "use": "sig"})
    keys = CountingKeySource(jwks_of(rsa))
    verifier = make_verifier(make_settings(), keys, clock)
    await rejected(verifier, mint(rsa, alg=alg))


async def test_s34_es512_off_the_allowlist_rejected(clock: FakeClock) -> None:
    p521 = make_signing_key("p521", curve="P-521")
    verifier = make_verifier(make_settings(), CountingKeySource(jwks_of(p521)), clock)
    await rejected(verifier, mint(p521, alg="ES512"))
    # Allowing ES512 shows the token itself was fine: the allowlist alone rejected it.
    allowing = make_verifier(
        make_settings(allowed_algorithms=("ES256", "ES512")),
        CountingKeySource(jwks_of(p521)),
        clock,
    )
    assert (await allowing.verify(mint(p521, alg="ES512"))).subject == "alice"


async def test_s34_key_type_never_picks_the_algorithm(clock: FakeClock) -> None:
    """An allowed alg with a key of another type/curve under that kid is refused."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "shared", "use": "sig"})
    p256 = make_signing_key("p256")
    keys = CountingKeySource(jwks_of(rsa, p256))
    settings = make_settings(allowed_algorithms=("ES256", "ES384", "RS256"))
    verifier = make_verifier(settings, keys, clock)
    # ES384 header over the P-256 key: curve mismatch.
    header = {"alg": "ES384", "typ": "at+jwt", "kid": "p256"}
    token = mint(p256, header_overrides=header)
    await rejected(verifier, token)
    # ES256 header naming the RSA key's kid, signed by the EC key: key type mismatch.
    await rejected(verifier, mint(p256, header_overrides={"kid": "shared"}))


@pytest.mark.parametrize("alg", ["none", "HS256", "None"])
def test_s34_configuring_symmetric_or_none_algorithms_fails(alg: str) -> None:
    keys = CountingKeySource({"keys": []})
    with pytest.raises(ValueError, match="asymmetric"):
        JwtTokenVerifier(make_settings(allowed_algorithms=("ES256", alg)), keys)


def test_s34_empty_allowlist_fails() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        JwtTokenVerifier(make_settings(allowed_algorithms=()), CountingKeySource({"keys": []}))


KID_INJECTIONS: list[Any] = [
    "' OR '1'='1' --",
    "k1'; DROP TABLE keys; --",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "k" * 10_240,
    "k1" + "\u202e" + "evil",
    "клю́ч-🔑",
    "k1\x00",
    "\x00",
    "",
    None,
    123,
    ["k1"],
    {"$ne": None},
]


@pytest.mark.parametrize("kid", KID_INJECTIONS, ids=range(len(KID_INJECTIONS)))
async def test_s35_kid_injection_is_a_clean_invalid_token(
    key: Key, verifier: JwtTokenVerifier, kid: Any
) -> None:
    error = await rejected(verifier, mint(key, header_overrides={"kid": kid}))
    assert error.status_code == 401


async def test_s35_missing_kid_rejected(key: Key, verifier: JwtTokenVerifier) -> None:
    await rejected(verifier, mint(key, header_overrides={"kid": None}))


class _RecordingHandler(BaseHTTPRequestHandler):
    hits: list[str]
    body: bytes

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def attacker_server() -> Iterator[tuple[str, list[str], Key]]:
    """A loopback server offering the attacker's JWKS; records every request it gets."""
    attacker = make_signing_key("k1")  # same kid as the real key
    hits: list[str] = []
    handler = type(
        "Handler",
        (_RecordingHandler,),
        {"hits": hits, "body": json.dumps(jwks_of(attacker)).encode()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits, attacker
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_s36_jku_x5u_jwk_x5c_ignored_and_never_fetched(
    key: Key,
    verifier: JwtTokenVerifier,
    keys: CountingKeySource,
    attacker_server: tuple[str, list[str], Key],
) -> None:
    url, hits, attacker = attacker_server
    pointers = {
        "jku": f"{url}/jwks.json",
        "x5u": f"{url}/cert.pem",
        "jwk": jwks_of(attacker)["keys"][0],
        "x5c": [base64.b64encode(b"not a certificate").decode()],
    }
    for name, value in pointers.items():
        await rejected(verifier, mint(attacker, header_overrides={name: value}))
        await rejected(verifier, mint(attacker, header_overrides={name: value, "kid": "new"}))
    await rejected(verifier, mint(attacker, header_overrides=pointers))
    # The real key's token with the same headers still verifies: they are simply ignored.
    assert (await verifier.verify(mint(key, header_overrides=pointers))).subject == "alice"
    assert hits == []
    assert keys.forced <= 1


async def test_s36_unknown_kid_refetch_is_rate_limited(
    key: Key, keys: CountingKeySource, clock: FakeClock
) -> None:
    verifier = make_verifier(make_settings(jwks_refresh_min_interval=30), keys, clock)
    stranger = make_signing_key("stranger")
    tokens = [mint(stranger, header_overrides={"kid": f"unknown-{i}"}) for i in range(20)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(result, InvalidTokenError) for result in results)
    assert keys.forced == 1
    clock.advance(29)
    await rejected(verifier, tokens[0])
    assert keys.forced == 1
    clock.advance(2)
    await rejected(verifier, tokens[0])
    assert keys.forced == 2


async def test_s36_rotated_key_found_by_one_refetch(
    key: Key, keys: CountingKeySource, verifier: JwtTokenVerifier
) -> None:
    rotated = make_signing_key("k2")
    keys.published = jwks_of(key, rotated)
    assert (await verifier.verify(mint(rotated, subject="carol"))).subject == "carol"
    assert keys.forced == 1
    assert (await verifier.verify(mint(rotated, subject="dave"))).subject == "dave"
    assert keys.forced == 1


@pytest.mark.parametrize(
    "typ", [None, "JWT", "jwt", "at+jwt; x", "application/jwt", "", 1, ["at+jwt"]]
)
async def test_s37_typ_missing_or_not_at_jwt_rejected(
    key: Key, verifier: JwtTokenVerifier, typ: Any
) -> None:
    await rejected(verifier, mint(key, header_overrides={"typ": typ}))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_s37_typ_at_jwt_accepted_case_insensitively(
    key: Key, verifier: JwtTokenVerifier, typ: str
) -> None:
    await verifier.verify(mint(key, header_overrides={"typ": typ}))


async def test_s38_other_token_kinds_rejected(key: Key, verifier: JwtTokenVerifier) -> None:
    id_token = mint(
        key,
        audience="client-1",
        header_overrides={"typ": "JWT"},
        claim_overrides={"nonce": "n-1", "auth_time": int(START), "client_id": None},
    )
    id_token_for_resource = mint(key, header_overrides={"typ": "JWT"})
    for token in (
        secrets.token_urlsafe(32),  # opaque refresh / registration token
        "rt_" + secrets.token_urlsafe(32),
        "SplxlOBeZQQYbYS6WxSbIA",  # an authorization code
        id_token,
        id_token_for_resource,
    ):
        await rejected(verifier, token)


@pytest.mark.parametrize("issuer", [f"{ISSUER}/", ISSUER.upper(), "http://as.example.com", "as"])
async def test_s39_issuer_must_match_exactly(
    key: Key, verifier: JwtTokenVerifier, issuer: str
) -> None:
    await rejected(verifier, mint(key, issuer=issuer))


async def test_s39_exp_nbf_iat_with_leeway(
    key: Key, clock: FakeClock, keys: CountingKeySource
) -> None:
    verifier = make_verifier(make_settings(leeway_seconds=30), keys, clock)
    # exp passed 20 s ago: inside the leeway.
    await verifier.verify(mint(key, now=START - 320))
    # exp passed 31 s ago: outside.
    await rejected(verifier, mint(key, now=START - 331))
    # exp exactly at the edge of the leeway is expired.
    await rejected(verifier, mint(key, now=START - 330))
    # nbf/iat 20 s in the future (issuer clock ahead): accepted; 40 s: rejected.
    await verifier.verify(mint(key, now=START + 20))
    await rejected(verifier, mint(key, now=START + 40))
    await rejected(verifier, mint(key, claim_overrides={"nbf": START + 40}))
    await rejected(verifier, mint(key, claim_overrides={"iat": START + 40, "nbf": None}))
    # nbf is optional.
    await verifier.verify(mint(key, claim_overrides={"nbf": None}))


@pytest.mark.parametrize("value", ["1800000300", True, None, [1], 1e400])
async def test_s39_exp_must_be_a_number(key: Key, verifier: JwtTokenVerifier, value: Any) -> None:
    token = mint(key, claim_overrides={"exp": value} if value is not None else {"exp": None})
    await rejected(verifier, token)


def _tamper_char(segment: str) -> str:
    return ("A" if segment[0] != "A" else "B") + segment[1:]


def _malformed_tokens(key: Key) -> dict[str, str]:
    valid = mint(key)
    header, payload, signature = valid.split(".")
    other_claims = claims_of(valid) | {"sub": "mallory", "scope": "mcp notes:write"}
    flattened = json.dumps({"protected": header, "payload": payload, "signature": signature})
    good_header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    non_utf8 = b64url(b"\xff\xfe\xfd")
    non_utf8_claims = b64url(b'{"sub": "\xff"}')
    duplicate_alg = b64url('{"alg": "none", "alg": "ES256", "typ": "at+jwt"}')
    return {
        "json-flattened": flattened,
        "json-general": json.dumps(
            {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
        ),
        "jwe-5-parts": ".".join(
            [b64url(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt"}))]
            + [b64url(secrets.token_bytes(16))] * 4
        ),
        "jwe-dir": f"{b64url(json.dumps({'alg': 'dir', 'enc': 'A128GCM'}))}..aaaa.bbbb.cccc",
        "crit-unknown": mint(key, header_overrides={"crit": ["exp"], "exp": 1}),
        "crit-empty": mint(key, header_overrides={"crit": []}),
        "b64-false": mint(key, header_overrides={"b64": False, "crit": ["b64"]}),
        "oversized-100k": mint(key, claim_overrides={"pad": "x" * 100_000}),
        "oversized-9k": mint(key, claim_overrides={"pad": "x" * 9_000}),
        "non-utf8-header": f"{non_utf8}.{payload}.{signature}",
        "non-utf8-payload": f"{header}.{non_utf8_claims}.{signature}",
        "non-ascii-token": f"{header}.{payload}é.{signature}",
        "bad-base64": f"{header}.{payload}.{signature}!",
        "padded-base64": f"{header}==.{payload}.{signature}",
        "four-parts": f"{valid}.{signature}",
        "two-parts": f"{header}.{payload}",
        "empty-signature": f"{header}.{payload}.",
        "tampered-payload": f"{header}.{b64url(json.dumps(other_claims))}.{signature}",
        "tampered-signature": f"{header}.{payload}.{_tamper_char(signature)}",
        "truncated-signature": f"{header}.{payload}.{signature[:-4]}",
        "long-signature": f"{header}.{payload}.{signature}{signature}",
        "header-array": f"{b64url('[1, 2]')}.{payload}.{signature}",
        "header-duplicate-alg": f"{duplicate_alg}.{payload}.{signature}",
        "payload-nan": compact(good_header, {}, b"x").split(".")[0]
        + "."
        + b64url('{"exp": NaN}')
        + f".{signature}",
        "payload-string": f"{header}.{b64url(json.dumps('a string'))}.{signature}",
        "deep-json": f"{header}.{b64url('[' * 4_000)}.{signature}",
        "whitespace": f" {valid}",
        "empty": "",
        "dots": "..",
    }


async def test_s40_malformed_tokens_are_invalid_token(key: Key, verifier: JwtTokenVerifier) -> None:
    for name, token in _malformed_tokens(key).items():
        try:
            await verifier.verify(token)
        except InvalidTokenError:
            continue
        pytest.fail(f"{name} was accepted")


async def test_s40_signature_covers_what_the_verifier_reads(
    key: Key, verifier: JwtTokenVerifier
) -> None:
    """The tampered payload differs only in claims; the untampered token still verifies."""
    assert (await verifier.verify(mint(key))).subject == "alice"
    await rejected(verifier, _malformed_tokens(key)["tampered-payload"])


async def test_verified_token_cache_skips_signature_and_still_checks_revocation(
    key: Key, keys: CountingKeySource, clock: FakeClock
) -> None:
    revocations = MemoryRevocations()
    verifier = make_verifier(make_settings(), keys, clock, revocations)
    token = mint(key)
    first = await verifier.verify(token)
    assert keys.calls == 1
    # The second call is served from the cache: no key lookup, no signature check.
    assert await verifier.verify(token) == first
    assert keys.calls == 1
    assert revocations.calls == 2
    revocations.revoked.add(first.token_id)
    error = await rejected(verifier, token)
    assert "revoked" in error.description
    assert keys.calls == 1


async def test_verified_token_cache_honours_expiry(
    key: Key, keys: CountingKeySource, clock: FakeClock
) -> None:
    verifier = make_verifier(make_settings(leeway_seconds=30), keys, clock)
    token = mint(key, lifetime=60)
    await verifier.verify(token)
    clock.advance(60 + 29)
    await verifier.verify(token)  # inside the leeway, from the cache
    assert keys.calls == 1
    clock.advance(1)
    error = await rejected(verifier, token)
    assert "expired" in error.description
    # Dropped from the cache: the next attempt goes through full verification (and fails).
    await rejected(verifier, token)
    assert keys.calls == 2


async def test_verified_token_cache_is_bounded(
    key: Key, keys: CountingKeySource, clock: FakeClock
) -> None:
    verifier = make_verifier(make_settings(token_cache_size=2), keys, clock)
    tokens = [mint(key, subject=f"u{i}") for i in range(3)]
    for token in tokens:
        await verifier.verify(token)
    assert keys.calls == 3
    await verifier.verify(tokens[2])
    await verifier.verify(tokens[1])
    assert keys.calls == 3
    await verifier.verify(tokens[0])  # evicted as least recently used
    assert keys.calls == 4


async def test_cache_disabled(key: Key, keys: CountingKeySource, clock: FakeClock) -> None:
    verifier = make_verifier(make_settings(token_cache_size=0), keys, clock)
    token = mint(key)
    await verifier.verify(token)
    await verifier.verify(token)
    assert keys.calls == 2


_HYPOTHESIS_JWKS = jwks_of(make_signing_key("k1"))
_SEGMENT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    token=st.one_of(
        st.text(max_size=300),
        st.builds(lambda a, b, c: f"{a}.{b}.{c}", _SEGMENT, _SEGMENT, _SEGMENT),
        st.builds(
            lambda h, p, s: f"{b64url(json.dumps(h))}.{b64url(json.dumps(p))}.{b64url(s)}",
            st.fixed_dictionaries(
                {"alg": st.sampled_from(["ES256", "none", "HS256"]), "typ": st.just("at+jwt")},
                optional={"kid": st.one_of(st.just("k1"), st.text(max_size=10)), "crit": _JSON},
            ),
            st.dictionaries(st.sampled_from(["iss", "aud", "exp", "sub", "jti", "scope"]), _JSON),
            st.binary(max_size=80),
        ),
    )
)
def test_arbitrary_strings_only_ever_raise_invalid_token(token: str) -> None:
    verifier = JwtTokenVerifier(
        make_settings(), CountingKeySource(_HYPOTHESIS_JWKS), clock=FakeClock()
    )
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(InvalidTokenError):
            loop.run_until_complete(verifier.verify(token))
    finally:
        loop.close()


def sign_raw(key: Key, header_json: str, claims: dict[str, Any]) -> str:
    """Sign a header given as raw JSON text (to smuggle duplicate members)."""
    signing_input = f"{b64url(header_json)}.{b64url(json.dumps(claims))}"
    algorithm = JWSRegistry(algorithms=["ES256"]).get_alg("ES256")
    return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode(), key))}"


async def test_s40_duplicate_header_members_rejected(key: Key, verifier: JwtTokenVerifier) -> None:
    claims = claims_of(mint(key))
    clean = '{"alg": "ES256", "typ": "at+jwt", "kid": "k1"}'
    assert (await verifier.verify(sign_raw(key, clean, claims))).subject == "alice"
    duplicated = '{"alg": "ES256", "typ": "JWT", "typ": "at+jwt", "kid": "k1"}'
    await rejected(verifier, sign_raw(key, duplicated, claims))
