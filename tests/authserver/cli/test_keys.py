"""``charter keys``: rotation publishes before signing, retiring, the key-encryption check
(S63)."""

from __future__ import annotations

import json

from authserver.cli.output import format_time
from authserver.context import AuthServer
from tests.support.cli_runner import Charter


def test_keys_rotate_publishes_the_new_key_before_it_signs(
    cli: Charter, server: AuthServer
) -> None:
    assert cli("keys", "list", "--json").stdout.strip() == "[]"
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    rotated = cli("keys", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["status"] == "pending"
    assert new["activates_at"] > new["created_at"]
    listed = {key["kid"]: key for key in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed[old_kid]["status"] == "active"
    assert listed[old_kid]["retired_at"] == new["activates_at"]
    table = cli("keys", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["KID", "ALG", "STATUS"]
    # The active key's planned retirement is in STATUS, not under RETIRED as if it were past.
    [old_row] = [line for line in table if line.startswith(old_kid)]
    assert "active (retires " in old_row
    retired_at = table[0].index("RETIRED")
    assert old_row[retired_at:].split()[0] == "-"


def test_keys_retire(cli: Charter, server: AuthServer) -> None:
    no_delay = {"CHARTER_KEY_PUBLISH_AHEAD_SECONDS": "0"}
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    new_kid = json.loads(cli("keys", "rotate", "--json", env=no_delay).stdout)["kid"]
    listed = {key["kid"]: key for key in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed[new_kid]["status"] == "active"
    assert listed[old_kid]["status"] == "retired"
    assert listed[old_kid]["expires_at"] is not None

    assert cli("keys", "retire", "--", old_kid).exit_code == 2  # no TTY, no --yes
    # "--" lets a kid start with "-" (kids are base64url thumbprints)
    retired = cli("keys", "retire", "--immediately", "--yes", "--json", "--", old_kid)
    assert retired.exit_code == 0, retired.output
    assert json.loads(retired.stdout)["status"] == "expired"
    server.keys.invalidate_cache()
    assert [key["kid"] for key in server.keys.jwks()["keys"]] == [new_kid]
    assert cli("keys", "retire", "no-such-kid", "--yes").exit_code == 1


def test_keys_rotate_refuses_a_different_key_encryption_key(
    cli: Charter, server: AuthServer
) -> None:
    server.keys.ensure_signing_key()
    other = {"CHARTER_KEY_ENCRYPTION_KEY": "not-the-servers-secret"}
    result = cli("keys", "rotate", env=other)
    assert result.exit_code == 1
    assert "CHARTER_KEY_ENCRYPTION_KEY" in result.stderr
    assert len(json.loads(cli("keys", "list", "--json").stdout)) == 1


def test_s63_retire_immediately_during_a_pending_rotation_keeps_a_signing_key(
    cli: Charter, server: AuthServer
) -> None:
    server.keys.ensure_signing_key()
    old_kid = json.loads(cli("keys", "list", "--json").stdout)[0]["kid"]
    assert cli("keys", "rotate").exit_code == 0  # the new key is pending for 120 s
    retired = cli("keys", "retire", "--immediately", "--yes", "--", old_kid)
    assert retired.exit_code == 0, retired.output
    server.keys.invalidate_cache()
    signing = server.keys.signing_key()
    assert signing.kid != old_kid
    assert signing.kid in {key["kid"] for key in server.keys.jwks()["keys"]}


def test_keys_list_shows_no_future_time_under_retired(cli: Charter, server: AuthServer) -> None:
    """Issue 13, checked: with a retired, an active (retiring later) and a pending key, the
    RETIRED column of ``charter keys list`` holds a past time or ``-``, never a planned one."""
    server.keys.ensure_signing_key()
    assert cli("keys", "rotate", env={"CHARTER_KEY_PUBLISH_AHEAD_SECONDS": "0"}).exit_code == 0
    assert cli("keys", "rotate").exit_code == 0  # pending for 120 s; the active one retires then
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert sorted(key["status"] for key in listed) == ["active", "pending", "retired"]
    now = format_time(server.now())
    header, *rows = cli("keys", "list").stdout.splitlines()
    starts = [header.index(name) for name in ("RETIRED", "LEAVES JWKS")]
    cells = {row.split()[0]: row[starts[0] : starts[1]].strip() for row in rows}
    for key in listed:
        shown = cells[key["kid"]]
        if key["status"] == "retired":
            assert shown == format_time(key["retired_at"]) <= now
        else:
            assert shown == "-", (key["status"], shown)
    [active] = [key for key in listed if key["status"] == "active"]
    assert active["retired_at"] > server.now()  # a planned retirement exists, and is not shown
