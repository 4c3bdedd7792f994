"""Run ``charter`` with tracemalloc: ``python -m bench._mem_probe DIR FRAMES -- ARGS``.

With ``FRAMES`` > 0, the first ``SIGUSR1`` starts :mod:`tracemalloc` (Python "tracemalloc"
module) keeping that many frames per allocation: only what is allocated from then on is
traced, which is what a diff needs, and start-up runs at full speed. Then it runs
``authserver.cli.main:main`` with ``ARGS`` as if it were the ``charter`` command. On
``SIGUSR1`` it runs a full collection and writes ``DIR/snapshot-N.pickle`` (when tracing) and
``DIR/memory-N.json`` (``{"traced": current bytes, "blocks": allocated blocks}``), N counting
from 1, so that a harness can diff the worker's memory with and without open streams. On
``SIGUSR2`` it calls glibc's ``malloc_trim(0)`` (how much of the RSS kept after streams closed
is free heap that the C allocator did not hand back) and writes ``DIR/trimmed``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def install(folder: Path, frames: int) -> None:
    taken = [0]

    def dump(_signum: int, _frame: FrameType | None) -> None:
        taken[0] += 1
        gc.collect()
        if frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{taken[0]}.pickle"))
        memory = {"traced": traced, "blocks": sys.getallocatedblocks()}
        (folder / f"memory-{taken[0]}.json").write_text(json.dumps(memory))

    def trim(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        (folder / "trimmed").write_text("1")

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit("usage: python -m bench._mem_probe DIR FRAMES -- CHARTER_ARGS…")
    folder, frames = Path(sys.argv[1]), int(sys.argv[2])
    args = sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:]
    install(folder, frames)
    sys.argv = ["charter", *args]
    from authserver.cli.main import main as charter_main

    charter_main()


if __name__ == "__main__":
    main()
