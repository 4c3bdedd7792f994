"""``docs/security.md`` stays the catalogue every security case id resolves to: one line per id
S1-S103, each naming tests that exist (or why none does yet), every ``test_s<N>_…`` listed under
its id, and every id the code and the tests mention present there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "security.md"
CASES = range(1, 104)
LINE = re.compile(r"^- \*\*S(\d+)\*\* (.+)$", re.MULTILINE)
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")
#: ``S<number>`` as a case id; ruff's ``noqa: S…`` codes are stripped first.
CASE_ID = re.compile(r"\bS(\d{1,3})\b")
#: Tokens that look like ids but are not: PKCE's ``S256`` method and a made-up ``S384`` one.
NOT_CASES = frozenset({256, 384})
NOQA = re.compile(r"#\s*noqa:[^\n]*")
TEST_NAME_ID = re.compile(r"(?:^|_)s(\d{1,3})(?=_|$)")
SEARCHED = ("authserver", "resourceserver", "tests")


def catalogue() -> dict[int, str]:
    lines = LINE.findall(CATALOGUE.read_text(encoding="utf-8"))
    ids = [int(number) for number, _text in lines]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "one line per id, in order"
    return {int(number): text for number, text in lines}


def functions_of(path: Path) -> set[str]:
    """``name`` and ``Class::name`` of every test function in ``path``."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}::")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.add(prefix + node.name)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return found


def test_every_case_has_exactly_one_line() -> None:
    assert sorted(catalogue()) == list(CASES)


def test_every_line_names_tests_or_says_why_not() -> None:
    for number, text in catalogue().items():
        named = TEST_REFERENCE.findall(text)
        pending = re.search(r"not yet covered \((issue \d+|no issue yet)\)", text)
        benchmark = "`bench/" in text
        assert named or pending or benchmark, f"S{number}: {text}"


def test_every_named_test_exists() -> None:
    for number, text in catalogue().items():
        for file, function in TEST_REFERENCE.findall(text):
            path = ROOT / file
            assert path.is_file(), f"S{number}: no {file}"
            assert function in functions_of(path), f"S{number}: no {file}::{function}"


def test_every_test_named_after_a_case_is_listed_under_it() -> None:
    entries = catalogue()
    missing = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for function in functions_of(path):
            for number in TEST_NAME_ID.findall(function.rsplit("::", 1)[-1]):
                if int(number) in NOT_CASES:
                    continue
                if f"`{rel}::{function}`" not in entries.get(int(number), ""):
                    missing.append(f"S{number}: {rel}::{function}")
    assert missing == []


def test_every_case_id_mentioned_in_the_code_and_tests_resolves() -> None:
    entries = catalogue()
    unknown = []
    for folder in SEARCHED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = NOQA.sub("", path.read_text(encoding="utf-8"))
            for number in CASE_ID.findall(text):
                if int(number) not in entries and int(number) not in NOT_CASES:
                    unknown.append(f"{path.relative_to(ROOT)}: S{number}")
    assert unknown == []
