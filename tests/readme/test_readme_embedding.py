"""The README's embedding example is ``examples/starlette_app.py`` exactly (which
``tests/e2e/test_examples.py`` runs on a real socket with the SDK client), and the other two
examples it names exist and use the API it describes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_embedding_example_is_the_tested_starlette_app() -> None:
    text = README.read_text(encoding="utf-8")
    shown = text.split("# examples/starlette_app.py\n", 1)[1].split("```", 1)[0]
    source = (ROOT / "examples" / "starlette_app.py").read_text(encoding="utf-8")
    assert shown == source[source.index("from __future__") :]
    fastapi = (ROOT / "examples" / "fastapi_app.py").read_text(encoding="utf-8")
    assert 'app.mount("/", charter.app)' in fastapi
    host = (ROOT / "examples" / "host_auth_app.py").read_text(encoding="utf-8")
    assert "host_authentication=True" in host and "AuthenticationMiddleware" in host
