"""Client-chosen text made safe to show (Unicode UAX #9 §2 explicit formatting characters, S103).

A client picks its ``client_name`` (and other metadata); shown raw, a right-to-left override
(U+202E) or an isolate makes the text after it read reversed, so "Good App<RLO>moc.live" reads as
another name. :func:`neutral_text` replaces every bidirectional formatting character — the
embeddings, overrides and isolates, their terminators, the implicit marks (LRM, RLM, ALM) — and
other C0/C1 control characters with U+FFFD, so the substitution stays visible. The page
templates pass every value through it (the Jinja2 ``finalize`` hook) and wrap client names in
``<bdi>`` so a legitimate right-to-left name cannot reorder the sentence around it; the CLI's
text output uses it for every cell.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_UNSAFE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f" + "".join(sorted(BIDI_CONTROLS)) + "]"
)


def neutral_text(value: str) -> str:
    """``value`` with bidirectional formatting and control characters replaced by U+FFFD."""
    return _UNSAFE.sub(REPLACEMENT, value)


def neutral_value(value: Any) -> Any:
    """The Jinja2 ``finalize`` hook: strings neutralised, anything else as it is."""
    return neutral_text(value) if isinstance(value, str) else value
