"""Text from a request must hold no NUL (U+0000) before it goes near SQL (S102).

PostgreSQL cannot store or even compare a text value with a NUL in it (the driver refuses the
statement), SQLite can: without this check one request would get a clean 400/401 on SQLite and
a 503 with a logged database error on PostgreSQL. No OAuth parameter, registration field or form
value has any use for the character, so every reader refuses it as bad input, on both databases
alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NUL = "\x00"


def has_nul(values: Iterable[str]) -> bool:
    """True when any of ``values`` holds a NUL."""
    return any(NUL in value for value in values)


def json_has_nul(document: Any) -> bool:
    """True when any string of a parsed JSON document (keys too) holds a NUL."""
    if isinstance(document, str):
        return NUL in document
    if isinstance(document, dict):
        return has_nul(document) or any(json_has_nul(value) for value in document.values())
    if isinstance(document, list):
        return any(json_has_nul(value) for value in document)
    return False
