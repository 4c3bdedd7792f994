"""Garbage-collector settings of a serving worker (Python ``gc`` module: ``freeze``,
``set_threshold``).

A worker imports a few hundred thousand long-lived objects (modules, classes, SQLAlchemy and
pydantic machinery) before it serves anything. With the default thresholds every full
collection walks all of them again: under load that was 24-37% of the worker's CPU and full
collections of 65-125 ms, which made the p99 (bench/README.md "Where the time goes").

:func:`tune_for_serving` runs once when the worker has finished starting (the app's lifespan):
it collects what start-up left behind, moves every surviving object to the permanent
generation (:func:`gc.freeze`: never scanned again) and raises the first-generation threshold
so that young collections run about thirty times less often. Cycles made while serving are
still collected; reference counting frees everything else at once, as before.
"""

from __future__ import annotations

import gc

#: Allocations (minus deallocations) between young collections; CPython's default is 700.
YOUNG_THRESHOLD = 20_000
#: Young collections per middle-generation one, middle per full one (CPython: 10, 10).
OLDER_THRESHOLDS = (20, 20)


def tune_for_serving() -> None:
    """Freeze what start-up made and collect less often from now on (idempotent)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
