"""The peer servers' virtual environments under ``bench/.peers/`` (git-ignored).

Each peer gets its own venv, built once with pip from PyPI and reused while its marker file
names the same requirements. A peer whose requirements do not install (or do not import on
any interpreter found here) is reported as missing with pip's last lines, and the run goes on
without it. http-mcp needs Python ≥ 3.12 (it uses PEP 695 syntax), so its venv is built with
the first ``python3.13``/``python3.12`` found on the PATH or under pyenv.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench._procs import BenchError

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
MARKER = "bench-peer.json"


@dataclass(frozen=True)
class PeerSpec:
    """A peer venv: the pip requirements, the module that must import, the Python it needs."""

    name: str
    requirements: tuple[str, ...]
    probe_import: str
    distributions: tuple[str, ...]
    min_python: tuple[int, int] = (3, 11)


PEERS: dict[str, PeerSpec] = {
    "mcp": PeerSpec(
        "mcp", ("mcp>=2,<3", "uvicorn[standard]"), "mcp.server.mcpserver", ("mcp", "uvicorn")
    ),
    "fastmcp": PeerSpec(
        "fastmcp", ("fastmcp>=4,<5", "uvicorn[standard]"), "fastmcp", ("fastmcp", "mcp", "uvicorn")
    ),
    "http-mcp": PeerSpec(
        "http-mcp",
        ("http-mcp", "uvicorn[standard]"),
        "http_mcp.server",
        ("http-mcp", "uvicorn"),
        min_python=(3, 12),
    ),
    "profilers": PeerSpec("profilers", ("py-spy",), "json", ("py-spy",)),
}


@dataclass(frozen=True)
class PeerEnv:
    """A built venv: its interpreter and the installed versions of what matters."""

    name: str
    python: Path
    versions: dict[str, str]
    python_version: str

    def script(self, name: str) -> Path:
        return self.python.parent / name


def _interpreter_for(spec: PeerSpec) -> str:
    current = sys.version_info[:2]
    if current >= spec.min_python:
        return sys.executable
    candidates: list[str] = []
    for minor in range(13, spec.min_python[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found and "/shims/" not in found:  # a pyenv shim fails unless that version is active
            candidates.append(found)
        candidates += sorted(
            glob.glob(str(Path.home() / f".pyenv/versions/3.{minor}.*/bin/python3"))
        )
    if not candidates:
        raise BenchError(
            f"{spec.name} needs Python >= {spec.min_python[0]}.{spec.min_python[1]} and none was "
            "found (looked for python3.13/python3.12 on the PATH and under ~/.pyenv/versions)"
        )
    return candidates[0]


def _describe(python: Path, spec: PeerSpec) -> tuple[dict[str, str], str]:
    code = (
        "import importlib, importlib.metadata as m, json, sys\n"
        f"importlib.import_module({spec.probe_import!r})\n"
        f"names = {list(spec.distributions)!r}\n"
        "print(json.dumps({'versions': {n: m.version(n) for n in names},"
        " 'python': sys.version.split()[0]}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise BenchError(
            f"{spec.name}: `import {spec.probe_import}` failed:\n{done.stderr[-1500:]}"
        )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(data["versions"]), str(data["python"])


def ensure_peer(name: str, *, log: bool = True) -> PeerEnv:
    """The venv of peer ``name``, built when absent or built from other requirements."""
    spec = PEERS[name]
    folder = PEERS_DIR / name
    python = folder / "bin" / "python"
    marker = folder / MARKER
    wanted = {"requirements": list(spec.requirements)}
    if python.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                versions, python_version = _describe(python, spec)
                return PeerEnv(name, python, versions, python_version)
        except (BenchError, ValueError):
            pass
    if log:
        print(
            f"  building the {name} venv in {folder} ({' '.join(spec.requirements)}) …", flush=True
        )
    if folder.exists():
        shutil.rmtree(folder)
    interpreter = _interpreter_for(spec)
    made = subprocess.run(
        [interpreter, "-m", "venv", str(folder)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        raise BenchError(f"{name}: python -m venv failed:\n{made.stderr[-1500:]}")
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *spec.requirements,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if installed.returncode != 0:
        tail = "\n".join(
            line for line in installed.stderr.splitlines() if not line.startswith("WARNING")
        )[-1500:]
        raise BenchError(f"{name}: pip install {' '.join(spec.requirements)} failed:\n{tail}")
    versions, python_version = _describe(python, spec)
    marker.write_text(json.dumps(wanted))
    return PeerEnv(name, python, versions, python_version)
