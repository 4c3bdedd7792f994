"""``charter serve --forwarded-allow-ips`` behind a load balancer (:mod:`.trusted_proxies`):
per-IP limits count the address a trusted proxy forwards in ``X-Forwarded-For``, and a peer that
is not a trusted proxy cannot pick the address it is counted under (S48, registration limit).
One process on SQLite and two workers on PostgreSQL (the workers get the setting too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import CharterProcess, charter_env, run_charter

#: One registration per client address per minute, so the second one from an address is refused.
LIMITED = {"CHARTER_REGISTRATION_RATE_PER_MINUTE": "1"}
#: Requests sent from one address: the limit's minute windows are fixed, so of three requests
#: sent within a minute at least two share a window and one of those is refused.
SAME_ADDRESS_TRIES = 3


@dataclass(frozen=True)
class Deployment:
    """How ``charter serve`` runs: its extra options."""

    options: tuple[str, ...]


@pytest.fixture(params=["one-process", pytest.param("two-workers", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """One process on a SQLite file, or two workers on a scratch PostgreSQL database."""
    if request.param == "one-process":
        return Deployment(())
    url: str = request.getfixturevalue("postgres_url")
    return Deployment(("--workers", "2", "--database-url", url))


def register(charter: CharterProcess, forwarded_for: str) -> int:
    """Register a client on a new connection, as sent through a proxy for ``forwarded_for``."""
    response = httpx.post(
        f"{charter.base_url}/register",
        json={
            "redirect_uris": ["http://127.0.0.1/callback"],
            "client_name": "forwarded",
            "token_endpoint_auth_method": "none",
        },
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )
    assert response.status_code in (201, 429), response.text
    return response.status_code


def logged_clients(charter: CharterProcess) -> list[str]:
    """The client address of each ``POST /register`` in the JSON access log."""
    records = [json.loads(line) for line in charter.stderr.splitlines() if line.startswith("{")]
    return [
        record["client"]
        for record in records
        if record.get("logger") == "charter.access" and record.get("path") == "/register"
    ]


def test_trusted_proxy_forwards_the_client_address(tmp_path: Path, deployment: Deployment) -> None:
    env = charter_env(CHARTER_FORWARDED_ALLOW_IPS="127.0.0.1", CHARTER_LOG_FORMAT="json", **LIMITED)
    with run_charter(tmp_path / "data", *deployment.options, env=env) as charter:
        # Each forwarded address has its own counter: none of them is over the limit.
        different = [register(charter, f"203.0.113.{n}") for n in (1, 2, 3)]
        # One forwarded address is limited like a direct client.
        same = [register(charter, "198.51.100.7") for _ in range(SAME_ADDRESS_TRIES)]
        charter.stop()
    assert different == [201, 201, 201]
    assert 429 in same, same
    # The access log (like every reader of the client address) sees the forwarded one.
    assert sorted(logged_clients(charter)) == sorted(
        ["203.0.113.1", "203.0.113.2", "203.0.113.3"] + ["198.51.100.7"] * SAME_ADDRESS_TRIES
    )


def test_s48_untrusted_peer_cannot_choose_its_address(
    tmp_path: Path, deployment: Deployment
) -> None:
    # The test connects from 127.0.0.1, which is not the trusted proxy here.
    env = charter_env(CHARTER_LOG_FORMAT="json", **LIMITED)
    with run_charter(
        tmp_path / "data", "--forwarded-allow-ips", "10.9.8.7", *deployment.options, env=env
    ) as charter:
        statuses = [register(charter, f"203.0.113.{n}") for n in range(1, SAME_ADDRESS_TRIES + 1)]
        charter.stop()
    # Every request counts for the peer 127.0.0.1, whatever X-Forwarded-For says.
    assert 429 in statuses, statuses
    assert logged_clients(charter) == ["127.0.0.1"] * SAME_ADDRESS_TRIES


def test_forwarded_values_that_are_not_addresses_share_one_limit(
    tmp_path: Path, deployment: Deployment
) -> None:
    """A trusted proxy forwarding junk (here: a new long non-address each time) neither fails the
    request (the audit column holds 64 characters) nor gets a fresh limit per value."""
    env = charter_env(CHARTER_FORWARDED_ALLOW_IPS="127.0.0.1", CHARTER_LOG_FORMAT="json", **LIMITED)
    with run_charter(tmp_path / "data", *deployment.options, env=env) as charter:
        statuses = [
            register(charter, f"not-an-address-{n}-" + "x" * 600) for n in range(SAME_ADDRESS_TRIES)
        ]
        # A real address forwarded next still has its own, untouched limit.
        proper = register(charter, "203.0.113.9")
        charter.stop()
    assert 429 in statuses, statuses
    assert proper == 201
