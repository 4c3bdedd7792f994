"""The README's "Tracing" commands work: the extra it installs exists and brings the packages,
and ``charter serve`` with its ``OTEL_*`` variables (the endpoint pointed at the test's
receiver) exports spans with its ``service.name``."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import charter_env, run_charter
from tests.support.otlp_receiver import otlp_receiver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def tracing_commands() -> list[list[str]]:
    """The shell words of each line of the "Tracing" section's first ``sh`` block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Tracing\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_readme_tracing_commands_export_spans(tmp_path: Path) -> None:
    activate, *commands = tracing_commands()
    assert activate == [".", ".venv/bin/activate"]  # the venv the Quick start made
    assert commands[0] == ["pip", "install", "-e", ".[otel]"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    packages = {requirement.split(">")[0] for requirement in extras["otel"]}
    assert packages == {
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    }
    assert packages <= {requirement.split(">")[0] for requirement in extras["test"]}
    exports = dict(word.split("=", 1) for line in commands[1:-1] for word in line[1:])
    assert all(line[0] == "export" for line in commands[1:-1])
    assert commands[-1] == ["charter", "serve"]
    assert exports["OTEL_TRACES_EXPORTER"] == "otlp"
    assert exports["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://")

    with otlp_receiver() as receiver:
        env = {k: v for k, v in charter_env().items() if not k.startswith("OTEL_")}
        env.update(exports)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint  # the test's collector
        with run_charter(tmp_path / "data", env=env) as charter:
            assert httpx.get(charter.mcp_url).status_code == 401
            spans = receiver.wait_for("GET /mcp")
    assert {span.service_name for span in spans} == {exports["OTEL_SERVICE_NAME"]}
