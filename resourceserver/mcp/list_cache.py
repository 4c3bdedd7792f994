"""The ``*/list`` results as each kind of caller sees them, computed once per registry change.

MCP 2025-11-25 "Tools" §Listing Tools (and the prompt, resource and template lists) with
§Pagination; what each caller sees is filtered by its scopes and, for anonymous callers, by
``public`` (:func:`resourceserver.mcp.access.visible`, S71, S83). Filtering 1,000 tools and
building their ``Tool`` objects on every request cost more than the rest of the request, yet
the answer depends only on the registry and on which of the scopes the items need the caller
holds. So the visible items' JSON objects are kept per *visibility class*:

* anonymous callers form one class (they see the public items);
* a signed-in caller's class is the set of its scopes that some item of the list needs; two
  callers with the same such set see exactly the same items (an item is visible when its scopes
  are a subset of the caller's, and scopes no item needs cannot change that).

The cache is dropped whenever the registry changes (:attr:`Registry.revision`, also guarded by
the number of items of each kind) and holds at most :data:`MAX_CLASSES` classes per kind, so a
stream of callers with ever new scope sets cannot grow it without bound. The listed objects are
shared between requests and must not be mutated (the page's list and the result are new).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from resourceserver.mcp.access import visible
from resourceserver.mcp.registry import Registry
from resourceserver.principal import Principal

JsonObject = dict[str, Any]
#: Distinct visibility classes kept per list before the cache of that list is emptied.
MAX_CLASSES = 256
_ANONYMOUS: tuple[str, frozenset[str]] = ("anonymous", frozenset())


class Listed(Protocol):
    """A tool, prompt, resource or template."""

    public: bool

    def to_json(self) -> JsonObject: ...


class _KindCache:
    """The visible items' JSON objects of one list, per visibility class."""

    __slots__ = ("needed", "views")

    def __init__(self, items: Mapping[str, Listed]) -> None:
        #: Every scope some item of this list needs.
        self.needed: frozenset[str] = frozenset().union(
            *(getattr(item, "scopes", frozenset()) for item in items.values())
        )
        self.views: dict[tuple[str, frozenset[str]], tuple[JsonObject, ...]] = {}


class ListCache:
    """Per-class views of one registry's tool, prompt, resource and template lists."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._stamp: tuple[int, ...] | None = None
        self._kinds: dict[str, _KindCache] = {}
        self._tools_vary: dict[str, bool] = {}
        self._has_public: bool | None = None

    def _fresh(self) -> None:
        """Forget everything when the registry has changed since it was cached."""
        registry = self.registry
        stamp = (
            registry.revision,
            id(registry.tools),
            len(registry.tools),
            len(registry.prompts),
            len(registry.resources),
            len(registry.templates),
        )
        if stamp != self._stamp:
            self._stamp = stamp
            self._kinds = {}
            self._tools_vary = {}
            self._has_public = None

    def items(self, kind: str) -> Mapping[str, Listed]:
        """The registry's items of ``kind`` (``tools``, ``prompts``, ``resources``,
        ``templates``), in registration order."""
        found: Mapping[str, Listed] = getattr(self.registry, kind)
        return found

    def visible(self, kind: str, principal: Principal) -> Sequence[JsonObject]:
        """The JSON objects of the items of ``kind`` that ``principal`` may see, in order."""
        self._fresh()
        cache = self._kinds.get(kind)
        if cache is None:
            cache = self._kinds[kind] = _KindCache(self.items(kind))
        key = _ANONYMOUS if principal.anonymous else ("scopes", principal.scopes & cache.needed)
        view = cache.views.get(key)
        if view is None:
            if len(cache.views) >= MAX_CLASSES:
                cache.views.clear()
            view = cache.views[key] = tuple(
                item.to_json() for item in self.items(kind).values() if visible(item, principal)
            )
        return view

    def tools_vary_by_scope(self, base_scope: str) -> bool:
        """:meth:`Registry.tools_vary_by_scope`, once per registry change."""
        self._fresh()
        found = self._tools_vary.get(base_scope)
        if found is None:
            found = self._tools_vary[base_scope] = self.registry.tools_vary_by_scope(base_scope)
        return found

    def has_public(self) -> bool:
        """:meth:`Registry.has_public`, once per registry change."""
        self._fresh()
        if self._has_public is None:
            self._has_public = self.registry.has_public()
        return self._has_public
