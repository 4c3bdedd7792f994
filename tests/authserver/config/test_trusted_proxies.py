"""``--forwarded-allow-ips`` / ``CHARTER_FORWARDED_ALLOW_IPS``: what it accepts and refuses."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from authserver.cli.main import charter
from authserver.config.trusted_proxies import DEFAULT_TRUSTED_PROXIES, parse_trusted_proxies


def test_default_trusts_a_proxy_on_this_host_only() -> None:
    assert parse_trusted_proxies(DEFAULT_TRUSTED_PROXIES) == [
        "127.0.0.1",
        "::ffff:7f00:1",  # the same, seen through a dual-stack socket (--host ::)
        "::1",
    ]


@pytest.mark.parametrize(
    ("value", "trusted"),
    [
        (
            "10.0.0.5, 10.1.0.0/16",
            ["10.0.0.5", "::ffff:a00:5", "10.1.0.0/16", "::ffff:a01:0/112"],
        ),
        ("10.1.2.3/16 fd00::1", ["10.1.0.0/16", "::ffff:a01:0/112", "fd00::1"]),
        ("*", ["*"]),
        ("", []),
    ],
)
def test_addresses_networks_every_peer_or_none(value: str, trusted: list[str]) -> None:
    assert parse_trusted_proxies(value) == trusted


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("proxy.internal", "'proxy.internal' is not an IP address or network"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
        ("*, 10.0.0.5", "give it alone"),
    ],
)
def test_anything_else_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_trusted_proxies(value)


def test_serve_refuses_a_host_name_before_starting() -> None:
    result = CliRunner().invoke(
        charter, ["serve", "--forwarded-allow-ips", "proxy.internal"], env={}
    )
    assert result.exit_code == 2
    assert "--forwarded-allow-ips" in result.output
    assert "write e.g. 10.0.0.5 or 10.0.0.0/8" in result.output


def test_an_ipv4_proxy_is_trusted_when_seen_through_a_dual_stack_socket() -> None:
    """uvicorn's own check, fed what the option passes it: a proxy at 10.0.0.5 or in
    10.1.0.0/16 connecting to ``--host ::`` shows up as ::ffff:10.x.x.x and is still trusted."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    trusted = _TrustedHosts(parse_trusted_proxies("10.0.0.5, 10.1.0.0/16"))
    assert "::ffff:10.0.0.5" in trusted
    assert "::ffff:10.1.200.3" in trusted
    assert "::ffff:10.2.0.1" not in trusted
    assert "10.2.0.1" not in trusted
