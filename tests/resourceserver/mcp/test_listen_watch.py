"""The shared watcher of ``subscriptions/listen`` streams (SECURITY-CASES S73, MCP 2026-07-28
"Subscriptions"): one check per distinct token per round, only failing tokens' streams are
woken and told why, expired tokens end without a check, keep-alives wake only quiet streams."""

from __future__ import annotations

import time

from resourceserver.errors import InvalidTokenError
from resourceserver.mcp.listen_watch import ListenWatch
from resourceserver.mcp.wake import Wake
from resourceserver.principal import Principal


class Check:
    """A re-check callable naming its token, like :class:`resourceserver.auth.Recheck`."""

    def __init__(self, key: str, principal: Principal) -> None:
        self.key = key
        self.principal = principal
        self.calls = 0
        self.revoked = False

    async def __call__(self) -> Principal:
        self.calls += 1
        if self.revoked:
            raise InvalidTokenError("the access token was revoked")
        return self.principal


def principal(lifetime: float = 3600) -> Principal:
    return Principal(
        subject="alice",
        client_id="c1",
        scopes=frozenset({"mcp"}),
        token_id="t1",
        expires_at=int(time.time() + lifetime),
    )


async def test_one_check_per_distinct_token_and_only_failed_streams_end() -> None:
    watch = ListenWatch(revalidate_seconds=600, keepalive=600)  # rounds driven by the test
    alice, bob = principal(), principal()
    shared, other = Check("token-a", alice), Check("token-b", bob)
    wakes = [Wake() for _ in range(6)]
    watched = [watch.add(wake, alice, shared) for wake in wakes[:5]]
    lone = watch.add(wakes[5], bob, other)
    try:
        await watch.recheck()
        assert (shared.calls, other.calls) == (1, 1)
        assert not any(wake.is_set() for wake in wakes)
        shared.revoked = True
        await watch.recheck()
        assert (shared.calls, other.calls) == (2, 2)
        assert all(w.ended == "the access token was revoked" for w in watched)
        assert all(wake.is_set() for wake in wakes[:5])
        assert lone.ended is None and not wakes[5].is_set()
    finally:
        for item in [*watched, lone]:
            watch.remove(item)
        await watch.aclose()
    assert len(watch) == 0


async def test_an_expired_token_ends_its_streams_without_a_check() -> None:
    watch = ListenWatch(revalidate_seconds=600, keepalive=600)
    gone = principal(lifetime=-1)
    check = Check("token-x", gone)
    wake = Wake()
    watched = watch.add(wake, gone, check)
    try:
        await watch.recheck()
        assert check.calls == 0
        assert watched.ended == "the access token expired" and wake.is_set()
    finally:
        watch.remove(watched)
        await watch.aclose()


async def test_keepalives_wake_only_quiet_streams() -> None:
    watch = ListenWatch(revalidate_seconds=600, keepalive=600)
    quiet, busy = Wake(), Wake()
    someone = principal()
    a = watch.add(quiet, someone, None)
    b = watch.add(busy, someone, None)
    try:
        a.sent_at -= 10
        b.sent()
        watch.beat(5)
        assert a.due and quiet.is_set()
        assert not b.due and not busy.is_set()
        a.sent()
        assert not a.due
    finally:
        watch.remove(a)
        watch.remove(b)
        await watch.aclose()
