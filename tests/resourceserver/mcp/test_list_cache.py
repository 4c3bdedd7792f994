"""The cached ``*/list`` views (MCP 2025-11-25 "Tools" §Listing Tools, S71, S83): each caller
still sees exactly the items its scopes (or, anonymous, ``public``) allow, in registration
order, and a registry change shows at the next list."""

from __future__ import annotations

from resourceserver.mcp import Registry
from resourceserver.mcp.list_cache import MAX_CLASSES, ListCache
from resourceserver.principal import ANONYMOUS, Principal


def caller(*scopes: str) -> Principal:
    return Principal(
        subject="alice", client_id="c", scopes=frozenset(scopes), token_id="t", expires_at=2**40
    )


def registry() -> Registry:
    registry = Registry()

    @registry.tool(public=True)
    def open_tool() -> str:
        """Anyone."""
        return ""

    @registry.tool(scopes={"mcp"})
    def base() -> str:
        """Base scope."""
        return ""

    @registry.tool(scopes={"mcp", "notes:write"})
    def write() -> str:
        """Needs notes:write."""
        return ""

    return registry


def names(views: object) -> list[str]:
    assert isinstance(views, tuple)
    return [item["name"] for item in views]


def test_each_caller_sees_what_its_scopes_allow() -> None:
    lists = ListCache(registry())
    assert names(lists.visible("tools", caller("mcp"))) == ["open_tool", "base"]
    assert names(lists.visible("tools", caller("mcp", "notes:write"))) == [
        "open_tool",
        "base",
        "write",
    ]
    assert names(lists.visible("tools", ANONYMOUS)) == ["open_tool"]
    # Scopes no tool needs do not change what is seen (same class, same answer).
    assert names(lists.visible("tools", caller("mcp", "other"))) == ["open_tool", "base"]
    assert names(lists.visible("tools", caller())) == ["open_tool"]


def test_a_registration_shows_at_the_next_list() -> None:
    reg = registry()
    lists = ListCache(reg)
    assert names(lists.visible("tools", caller("mcp"))) == ["open_tool", "base"]
    assert lists.tools_vary_by_scope("mcp")

    @reg.tool(scopes={"mcp"})
    def later() -> str:
        """Registered after the first list."""
        return ""

    assert names(lists.visible("tools", caller("mcp"))) == ["open_tool", "base", "later"]
    other = Registry()

    @other.prompt()
    def hello() -> str:
        """A prompt."""
        return "hi"

    assert lists.visible("prompts", caller("mcp")) == ()
    reg.merge(other)
    assert [p["name"] for p in lists.visible("prompts", caller("mcp"))] == ["hello"]


def test_public_and_scope_variation_follow_the_registry() -> None:
    reg = Registry()
    lists = ListCache(reg)
    assert not lists.has_public()

    @reg.tool(scopes={"mcp"})
    def base() -> str:
        """Base scope."""
        return ""

    assert not lists.tools_vary_by_scope("mcp")

    @reg.tool(public=True)
    def open_tool() -> str:
        """Anyone."""
        return ""

    assert lists.has_public()
    assert lists.tools_vary_by_scope("mcp")


def test_many_scope_sets_do_not_grow_the_cache_without_bound() -> None:
    reg = Registry()
    for index in range(MAX_CLASSES + 10):

        def tool() -> str:
            """Needs its own scope."""
            return ""

        reg.tool(name=f"t{index}", scopes={f"s{index}"})(tool)
    lists = ListCache(reg)
    for index in range(MAX_CLASSES + 10):
        assert names(lists.visible("tools", caller(f"s{index}"))) == [f"t{index}"]
    views = lists._kinds["tools"].views  # the bound is the behaviour under test
    assert len(views) <= MAX_CLASSES
