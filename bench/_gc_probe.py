"""Run ``charter`` with its garbage collections timed: ``python -m bench._gc_probe STATS -- ARGS``.

Installs a :data:`gc.callbacks` hook (Python "gc" module) that adds up the wall time of every
collection per generation (a collection holds the interpreter lock, so on a CPU-bound worker
this is CPU time), then runs ``authserver.cli.main:main`` with ``ARGS`` as if it were the
``charter`` command. Every half second the totals are written to the JSON file ``STATS``:
``{"collections": [g0, g1, g2], "seconds": [...], "max_ms": [...]}``.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

Totals = dict[str, list[float]]


def install(stats_path: Path) -> Totals:
    totals: Totals = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "max_ms": [0.0] * 3}
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        generation = int(info.get("generation", 0))
        took = time.perf_counter() - started[0]
        totals["collections"][generation] += 1
        totals["seconds"][generation] += took
        totals["max_ms"][generation] = max(totals["max_ms"][generation], took * 1000)

    def writer() -> None:
        temporary = stats_path.with_suffix(".tmp")
        while True:
            time.sleep(0.5)
            temporary.write_text(json.dumps(totals))
            temporary.replace(stats_path)

    gc.callbacks.append(callback)
    threading.Thread(target=writer, name="gc-probe", daemon=True).start()
    return totals


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m bench._gc_probe STATS -- CHARTER_ARGS…")
    stats_path = Path(sys.argv[1])
    args = sys.argv[3:] if sys.argv[2] == "--" else sys.argv[2:]
    install(stats_path)
    sys.argv = ["charter", *args]
    from authserver.cli.main import main as charter_main

    charter_main()


if __name__ == "__main__":
    main()
