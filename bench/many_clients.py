"""S67: 100 vs 100,000 registered clients, now part of the ``growth`` scenario of ``bench.run``.

``python -m bench.many_clients [options]`` is ``python -m bench.run --only growth [options]``
(see :mod:`bench.scenario_growth`: the token endpoint with 100 clients against
``--growth-clients`` clients and ``--growth-tokens`` token rows, ``tools/list`` with 10 and
1,000 tools, and a purge of ``--purge-rows`` expired rows while serving).
"""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main(["--only", "growth", *sys.argv[1:]]))
