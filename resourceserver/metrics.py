"""Prometheus metrics of the MCP server (``prometheus-client``; multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set, as ``charter serve --workers N`` does).

Every label value comes from a fixed set: MCP methods the server implements (else ``other``),
the era (``handshake`` or ``2026-07-28``), registered tool names only, and fixed outcomes. No
label ever holds a user, a client id, a token or a name a client chose (S91).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

MCP_REQUESTS = Counter(
    "charter_mcp_requests_total", "MCP requests handled, by method and era.", ["method", "era"]
)
TOOL_CALLS = Counter(
    "charter_tool_calls_total", "Tool calls, by registered tool and outcome.", ["tool", "outcome"]
)
TOOL_SECONDS = Histogram(
    "charter_tool_call_duration_seconds", "Time tool calls took, by registered tool.", ["tool"]
)
JWKS_REFRESHES = Counter(
    "charter_jwks_refreshes_total", "Loads of the issuer's JWKS, by outcome.", ["outcome"]
)
TOKEN_CACHE = Counter(
    "charter_token_cache_lookups_total",
    "Lookups in the verified-token cache, by result (hit ratio: hit / all).",
    ["result"],
)
#: The label of a tool call for a name that is not registered.
UNKNOWN_TOOL = "unregistered"


def mcp_method_label(method: str, known: frozenset[str]) -> str:
    """``method`` when the server implements it, else ``other``."""
    return method if method in known else "other"


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: MetricWrapperBase, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per label set and kept (the lookup takes a
    lock and builds tuples: a few per cent of the hot path). Label sets are bounded (S91)."""
    key = (id(metric), values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*values)
    return found
