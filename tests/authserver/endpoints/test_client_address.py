"""The client address that limits and the audit trail record
(:mod:`authserver.endpoints.client_address`)."""

from __future__ import annotations

import pytest

from authserver.endpoints.client_address import UNPARSEABLE, normalized_ip


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:c000:0201", "192.0.2.1"),
    ],
)
def test_addresses_are_recorded_in_canonical_form(host: str, expected: str) -> None:
    assert normalized_ip(host) == expected


@pytest.mark.parametrize(
    "host", ["", "unknown", "example.com", "203.0.113.7:443", "1.2.3.4.5", "x" * 5000]
)
def test_values_that_are_not_addresses_share_one_bucket(host: str) -> None:
    assert normalized_ip(host) == UNPARSEABLE
