"""The one settable clock of the tests (``make_server(clock=...)``, the resource server's
verifier and session store, the reliability workers).

Its default moment starts a whole hour (so also every 60-, 300- and 3600-second window of the
fixed-window limits): a test that counts attempts against a limit can never see the window roll
over in the middle, as it could on the wall clock.
"""

from __future__ import annotations

#: 2027-01-15T08:00:00Z, a multiple of 3600.
FIXED_NOW = 1_800_000_000.0


class Clock:
    """Returns ``now`` until a test moves it."""

    def __init__(self, now: float = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
