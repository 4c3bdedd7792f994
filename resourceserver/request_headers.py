"""A request's header fields, indexed once per request (RFC 9110 §5.1, §5.3).

Starlette's :class:`~starlette.datastructures.Headers` looks every name up by walking the raw
list again (and raises ``KeyError`` inside for each absent one); the MCP path asks for a dozen
names per request (``Authorization``, ``Accept``, ``Content-Type``, ``MCP-Protocol-Version``,
``Mcp-Method``, ``Mcp-Name``, ``Origin``, ``Mcp-Session-Id``…). :class:`IndexedHeaders` is the
same mapping (field names compared case-insensitively, the first value of a repeated field for
``[]``/``get``, every value for ``getlist``) over a dictionary built on the first lookup.
:func:`request_headers` gives each request one of them, shared by the layers it passes;
:func:`forget_request_headers` lets the index go before a response that may stream for hours
(a few KB per open stream otherwise, issue 10's memory per stream).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

#: The scope key under which a request's :class:`IndexedHeaders` is kept.
SCOPE_KEY = "charter.headers"


class IndexedHeaders(Headers):
    """Immutable request headers with dictionary lookups."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        #: Lower-cased name -> first value; names sent more than once.
        self._first: dict[str, str] | None = None
        self._repeated: frozenset[str] = frozenset()

    def _index(self) -> dict[str, str]:
        first: dict[str, str] = {}
        repeated: set[str] = set()
        for raw_name, raw_value in self._list:
            name = raw_name.decode("latin-1").lower()
            if name in first:
                repeated.add(name)
            else:
                first[name] = raw_value.decode("latin-1")
        self._first = first
        self._repeated = frozenset(repeated)
        return first

    def __getitem__(self, key: str) -> str:
        first = self._first if self._first is not None else self._index()
        return first[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        first = self._first if self._first is not None else self._index()
        return first.get(key.lower(), default)

    def __contains__(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        first = self._first if self._first is not None else self._index()
        return key.lower() in first

    def getlist(self, key: str) -> list[str]:
        first = self._first if self._first is not None else self._index()
        name = key.lower()
        if name in self._repeated:
            return super().getlist(name)
        value = first.get(name)
        return [] if value is None else [value]


def request_headers(scope: Scope) -> IndexedHeaders:
    """The request's :class:`IndexedHeaders` (made on the first call, then the same one)."""
    headers = scope.get(SCOPE_KEY)
    if headers is None:
        headers = scope[SCOPE_KEY] = IndexedHeaders(scope)
    return headers


def forget_request_headers(scope: Scope) -> None:
    """Let the request's index go (it is made again if anything still asks)."""
    headers = scope.pop(SCOPE_KEY, None)
    if headers is not None:
        headers._first = None
        headers._repeated = frozenset()
