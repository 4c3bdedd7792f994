"""S66: token issuance bursts, now the ``tokens`` scenario of ``python -m bench.run``.

``python -m bench.issuance [options]`` is ``python -m bench.run --only tokens [options]``:
the joserfc floors (``floor``, ``floor-db``) and Charter's ``client_credentials``,
``refresh_token`` and ``authorization_code`` grants on one worker, SQLite and PostgreSQL, with
p50/p99, grants/s and CPU per grant (see :mod:`bench.scenario_tokens`).
"""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main(["--only", "tokens", *sys.argv[1:]]))
