"""The README's configuration table, generated from the settings model (one row per field:
its ``CHARTER_*`` variable, its default as people read it, its description).

``python -m authserver.config.table`` prints it; a test keeps the README's copy equal to it.
"""

from __future__ import annotations

from pydantic import BaseModel

from authserver.config.options import env_name, shown_default
from authserver.config.settings import CharterSettings

HEADER = ("| variable | default | meaning |", "|---|---|---|")


def settings_table(model: type[BaseModel] = CharterSettings) -> str:
    """The Markdown table of every setting of ``model``."""
    rows = [
        f"| `{env_name(name)}` | {shown_default(field)} | {field.description or ''} |"
        for name, field in model.model_fields.items()
    ]
    return "\n".join([*HEADER, *rows])


if __name__ == "__main__":
    print(settings_table())
