"""S81: the external authorization server's discovery, JWKS and introspection requests go
through the SSRF guard: the configured issuer's own host is let through, any other private or
loopback host a metadata document names is not; redirects are refused, bodies bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from authserver.config.settings import CharterSettings
from authserver.federation.outbound import GuardedFetcher, external_fetch_policy
from resourceserver.external.issuer import ExternalIssuer, FetchFailedError
from resourceserver.jwks import KeySourceError
from tests.support.document_server import DocumentServer, document_server

JWKS = {"keys": [ECKey.generate_key("P-256").as_dict(private=False, kid="k1")]}


def issuer_settings(server: DocumentServer, tmp_path: Path) -> CharterSettings:
    return CharterSettings(authorization_server=server.url("/docs/idp"), data_dir=tmp_path)


def publish_metadata(server: DocumentServer, **members: str) -> str:
    issuer = server.url("/docs/idp")
    server.publish("/docs/idp/.well-known/openid-configuration", {"issuer": issuer, **members})
    return issuer


async def test_s81_the_configured_issuer_is_reached_and_its_keys_load(tmp_path: Path) -> None:
    with document_server() as server:
        issuer = publish_metadata(server, jwks_uri=server.publish("/docs/idp/jwks", JWKS))
        fetcher = GuardedFetcher(external_fetch_policy(issuer_settings(server, tmp_path)))
        keys = await ExternalIssuer(issuer, fetcher).key_source().get_jwks()
    assert [key.kid for key in keys] == ["k1"]


async def test_s81_a_jwks_uri_on_another_private_host_is_never_fetched(tmp_path: Path) -> None:
    with document_server() as server, document_server() as internal:
        inside = internal.publish("/docs/jwks", JWKS)
        issuer = publish_metadata(server, jwks_uri=inside)
        fetcher = GuardedFetcher(external_fetch_policy(issuer_settings(server, tmp_path)))
        with pytest.raises(KeySourceError):
            await ExternalIssuer(issuer, fetcher).key_source().get_jwks()
        with pytest.raises(FetchFailedError):
            await fetcher.post_form(internal.url("/docs/x"), {"token": "t"}, ("a", "b"))
        assert internal.hits["/docs/jwks"] == 0 and internal.hits["/docs/x"] == 0


async def test_s81_redirects_and_oversized_answers_are_refused(tmp_path: Path) -> None:
    with document_server() as server:
        fetcher = GuardedFetcher(external_fetch_policy(issuer_settings(server, tmp_path)))
        for path in ("/redirect", "/big", "/big-chunked"):
            with pytest.raises(FetchFailedError):
                await fetcher.get_json(server.url(path))
        assert server.hits["/docs/target.json"] == 0
        assert fetcher.policy.max_bytes < 1_000_000
