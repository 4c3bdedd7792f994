#!/usr/bin/env bash
# Regenerate migrations/versions/0001_initial.py from the current models (both packages).
# Run from anywhere; uses the project's .venv when present. Review the diff before committing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python=python3
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
rm -f migrations/versions/0001_initial.py
"$python" -m alembic -c alembic.ini -x "database_url=sqlite:///$scratch/empty.db" \
    revision --autogenerate --rev-id 0001 -m initial
"$python" -m ruff check --fix -q migrations/versions/0001_initial.py || true
"$python" -m ruff format -q migrations/versions/0001_initial.py
echo "wrote migrations/versions/0001_initial.py; check it with: pytest tests/migrations/test_migrations.py -q" >&2
