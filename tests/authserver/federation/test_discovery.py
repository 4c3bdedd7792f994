"""S81, upstream half: discovery, JWKS and token requests to an upstream OpenID Provider go
through the SSRF guard (the provider's own host let through, any other private or loopback host
its metadata names refused), are bounded in size and time, and follow no redirects; an unknown
``kid`` fetches the key set again at most once per interval."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from authserver.config.settings import CharterSettings
from authserver.federation.discovery import REFETCH_INTERVAL, DiscoveryError, UpstreamDirectory
from authserver.federation.token_exchange import TokenRequestError, redeem_code
from tests.support.document_server import DocumentServer, document_server

KEY = RSAKey.generate_key(2048, auto_kid=True)
JWKS = {"keys": [KEY.as_dict(private=False)]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish(server: DocumentServer, **members: str) -> str:
    issuer = server.url("/docs/idp")
    document = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token",
        "jwks_uri": server.publish("/docs/idp/jwks", JWKS),
        **members,
    }
    server.publish("/docs/idp/.well-known/openid-configuration", document)
    return issuer


def directory(tmp_path: Path, clock: Clock | None = None) -> UpstreamDirectory:
    settings = CharterSettings(data_dir=tmp_path)
    return UpstreamDirectory(settings, clock=clock or Clock())


def test_s81_upstream_discovery_and_keys_load_from_the_providers_own_host(
    tmp_path: Path,
) -> None:
    with document_server() as server:
        issuer = publish(server)
        upstream = directory(tmp_path)
        metadata = upstream.metadata(issuer)
        keys = upstream.keys(issuer, KEY.kid)
        upstream.metadata(issuer)
    assert metadata.token_endpoint == issuer + "/token"
    assert [key.kid for key in keys.keys] == [KEY.kid]
    assert server.hits["/docs/idp/.well-known/openid-configuration"] == 1  # cached


def test_s81_upstream_jwks_and_token_endpoints_on_other_private_hosts_are_never_reached(
    tmp_path: Path,
) -> None:
    with document_server() as server, document_server() as internal:
        inside = internal.publish("/docs/jwks", JWKS)
        issuer = publish(server, jwks_uri=inside, token_endpoint=internal.url("/docs/token"))
        upstream = directory(tmp_path)
        with pytest.raises(DiscoveryError, match="could not be reached"):
            upstream.keys(issuer, None)
        with pytest.raises(TokenRequestError, match="refused"):
            redeem_code(
                upstream.metadata(issuer).token_endpoint, upstream.policy(issuer), code="c",
                redirect_uri="http://127.0.0.1:8000/login/idp/callback", code_verifier="v",
                client_id="a", client_secret="b", auth_method="client_secret_basic",
            )  # fmt: skip
    assert internal.hits["/docs/jwks"] == 0 and internal.hits["/docs/token"] == 0


def test_s81_upstream_redirects_oversized_answers_and_foreign_issuers_are_refused(
    tmp_path: Path,
) -> None:
    with document_server() as server:
        upstream = directory(tmp_path)
        server.publish("/docs/big/.well-known/openid-configuration", b" " * 300_000 + b"{}")
        with pytest.raises(DiscoveryError):
            upstream.metadata(server.url("/docs/big"))
        redirected = publish(server, jwks_uri=server.url("/redirect"))
        with pytest.raises(DiscoveryError):
            upstream.keys(redirected, None)
        server.publish(
            "/docs/liar/.well-known/openid-configuration", {"issuer": "https://other.example"}
        )
        with pytest.raises(DiscoveryError, match="another issuer"):
            upstream.metadata(server.url("/docs/liar"))
        policy = upstream.policy(redirected)
    assert server.hits["/docs/target.json"] == 0
    assert policy.max_bytes <= 256 * 1024 and policy.timeout <= 5


def test_s81_an_unknown_kid_fetches_the_key_set_again_at_most_once_per_interval(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with document_server() as server:
        issuer = publish(server)
        upstream = directory(tmp_path, clock)
        upstream.keys(issuer, KEY.kid)
        for _ in range(20):
            upstream.keys(issuer, "made-up-kid")
        clock.now += REFETCH_INTERVAL
        upstream.keys(issuer, "made-up-kid")
    assert server.hits["/docs/idp/jwks"] == 2
