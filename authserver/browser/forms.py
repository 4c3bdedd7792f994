"""The fields of the sign-in pages' forms (HTML §4.10.21.6, urlencoded form data).

The endpoints read a form with :func:`authserver.endpoints.bodies.read_browser_form`; every
field the flow uses must be sent exactly once, anything else counts as missing.
"""

from __future__ import annotations

from collections.abc import Mapping

#: A posted form: every value sent for each field name, in order.
Form = Mapping[str, list[str]]


def single(form: Form, name: str) -> str | None:
    """The value of ``name`` when it was sent exactly once, else None."""
    values = form.get(name, [])
    return values[0] if len(values) == 1 else None
