"""What to say when a ``--tools`` module cannot be used (``charter serve``, ``charter stdio``).

Python's import system (Python Language Reference §5, "The import system") looks for a
top-level module in each :data:`sys.path` entry in order; ``charter serve`` puts the folder it
runs in first, as ``python -m`` does. Two failures look alike in ``ImportError`` text and need
different fixes: the named module is not found anywhere (run from its folder, set
``PYTHONPATH`` or install it), or it was found but an import inside it failed (install what it
imports, or fix it). The message names the module, where it was looked for or found, the
underlying ``ImportError`` and what to do.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def describe_tool_module_error(exc: Exception) -> str:
    """The ``--tools`` error for ``exc`` (from :func:`authserver.deployment.build_registry`)."""
    module = getattr(exc, "name", None)
    cause = exc.__cause__
    if not isinstance(module, str) or not isinstance(cause, ImportError):
        return f"--tools: {exc}"  # imported, but not a tool module (or a bad definition)
    missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
    underlying = f"{type(cause).__name__}: {cause}"
    if missing is not None and (module == missing or module.startswith(missing + ".")):
        return (
            f"--tools: cannot import tool module {module!r} ({underlying}).\n"
            f"  Python looked for {missing!r} ({missing}.py or a folder {missing}/) in:\n"
            + "\n".join(f"    {entry}" for entry in _search_path())
            + f"\n  Run `charter` in the folder holding {missing}.py, add that folder to "
            "PYTHONPATH, or install the package providing it into this Python "
            f"(`{sys.executable} -m pip install …`)."
        )
    found = _origin(module)
    where = f" ({found})" if found else ""
    fix = (
        f"Install the package providing {missing!r} into this Python "
        f"(`{sys.executable} -m pip install …`)"
        if missing is not None
        else "Fix that import in the module"
    )
    return (
        f"--tools: tool module {module!r} was found{where} but importing it failed: "
        f"{underlying}.\n  {fix}, then start again."
    )


def _search_path() -> list[str]:
    """The :data:`sys.path` entries, the working folder named as such."""
    here = os.getcwd()
    return [
        f"{entry or here} (the current folder)" if entry in ("", here) else entry
        for entry in sys.path
    ]


def _origin(module: str) -> str | None:
    """Where ``module`` was found (its file), or None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None
