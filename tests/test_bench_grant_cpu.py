"""``bench.grant_cpu``'s own parts: the statement counter and the A/B alternation; nothing timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bench import grant_cpu


def test_statements_are_counted_with_their_kind() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with grant_cpu.counting_statements(engine) as seen, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.execute(text("select x from t")).all()
    assert seen == ["INSERT", "SELECT"]
    with engine.begin() as conn:  # the listener is gone afterwards
        conn.execute(text("SELECT 1"))
    assert seen == ["INSERT", "SELECT"]


def test_ab_alternates_the_trees_and_reports_medians(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    here = Path(grant_cpu.__file__).resolve().parents[1]
    ran: list[Path] = []
    cpu = {tmp_path: iter([3.0, 5.0, 4.0]), here: iter([1.0, 2.0, 9.0])}

    def fake_run(tree: Path, args: list[str]) -> dict[str, Any]:
        ran.append(tree)
        return {"cpu_ms": next(cpu[tree]), "statements": 7, "calls": 100}

    monkeypatch.setattr(grant_cpu, "_run_tree", fake_run)
    lines: list[str] = []
    figures = grant_cpu.ab(tmp_path, ["refresh"], 3, lines.append)
    assert ran == [tmp_path, here, here, tmp_path, tmp_path, here]
    assert figures == {"A": [3.0, 5.0, 4.0], "B": [1.0, 2.0, 9.0]}
    assert any(line.startswith("A: median 4.000") for line in lines)
    assert any(line.startswith("B: median 2.000") for line in lines)
    assert lines[-1].startswith("load average")
