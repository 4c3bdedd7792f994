"""What ``Context.elicit``, ``Context.sample`` and ``Context.list_roots`` return: the client's
answers, checked and typed.

MCP 2026-07-28 "Elicitation" (``ElicitResult``), "Sampling" (``CreateMessageResult``) and
"Roots" (``ListRootsResult``); the same shapes in 2025-11-25.

Each result is also a read-only mapping of the answer as the client sent it, so code written
for the earlier plain dictionaries (``answer["action"]``, ``answer.get("content")``) keeps
working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ValidationError

from resourceserver.mcp.errors import ClientRequestError

JsonObject = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)
ElicitAction = Literal["accept", "decline", "cancel"]
_ACTIONS = ("accept", "decline", "cancel")


class _Answer(Mapping[str, Any]):
    """A read-only mapping over the raw answer."""

    __slots__ = ("_raw",)

    def __init__(self, raw: JsonObject) -> None:
        self._raw = raw

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"

    def to_json(self) -> JsonObject:
        """The answer as the client sent it."""
        return dict(self._raw)


def shape_problem(method: str, raw: object) -> str | None:
    """Why ``raw`` is not a valid answer to ``method``, or None when it is."""
    if not isinstance(raw, dict):
        return "it must be an object"
    if method == "elicitation/create":
        if raw.get("action") not in _ACTIONS:
            return "'action' must be accept, decline or cancel"
        content = raw.get("content")
        if content is not None and not isinstance(content, dict):
            return "'content' must be an object"
    elif method == "sampling/createMessage":
        if raw.get("role") not in ("user", "assistant") or "content" not in raw:
            return "it needs 'role' and 'content'"
    elif method == "roots/list":
        roots = raw.get("roots")
        if not isinstance(roots, list) or not all(isinstance(root, dict) for root in roots):
            return "'roots' must be a list of objects"
    return None


def checked(method: str, raw: object) -> JsonObject:
    """``raw`` when it is a valid answer to ``method`` (raises ClientRequestError)."""
    problem = shape_problem(method, raw)
    if problem is not None:
        raise ClientRequestError(f"the client's answer to {method} is not valid: {problem}")
    return cast(JsonObject, raw)


class ElicitResult(_Answer, Generic[ModelT]):
    """The user's answer to ``Context.elicit``.

    ``data`` is the content validated into the pydantic model given as the schema (None when
    the user did not accept, or a plain JSON schema was given).
    """

    __slots__ = ("data",)

    def __init__(self, raw: JsonObject, model: type[ModelT] | None = None) -> None:
        super().__init__(checked("elicitation/create", raw))
        self.data: ModelT | None = None
        if model is not None and self.accepted:
            try:
                self.data = model.model_validate(self.content or {})
            except ValidationError as exc:
                raise ClientRequestError(
                    f"the user's answer does not match the requested schema: {exc}"
                ) from exc

    @property
    def action(self) -> ElicitAction:
        """``accept``, ``decline`` or ``cancel``."""
        return cast(ElicitAction, self._raw["action"])

    @property
    def accepted(self) -> bool:
        """True when the user submitted the form."""
        return self.action == "accept"

    @property
    def content(self) -> JsonObject | None:
        """The submitted values (only when accepted)."""
        content = self._raw.get("content")
        return content if isinstance(content, dict) else None


class SamplingResult(_Answer):
    """The client's model's answer to ``Context.sample`` (a ``CreateMessageResult``)."""

    def __init__(self, raw: JsonObject) -> None:
        super().__init__(checked("sampling/createMessage", raw))

    @property
    def role(self) -> str:
        return str(self._raw["role"])

    @property
    def model(self) -> str:
        """The model that answered, as the client names it."""
        return str(self._raw.get("model", ""))

    @property
    def stop_reason(self) -> str | None:
        reason = self._raw.get("stopReason")
        return reason if isinstance(reason, str) else None

    @property
    def text(self) -> str:
        """The text of the answer (text blocks joined; empty when it has none)."""
        content = self._raw["content"]
        blocks = content if isinstance(content, list) else [content]
        return "".join(
            str(block.get("text", ""))
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        )


class Root(_Answer):
    """One of the client's roots (``uri`` and an optional ``name``)."""

    @property
    def uri(self) -> str:
        return str(self._raw.get("uri", ""))

    @property
    def name(self) -> str | None:
        name = self._raw.get("name")
        return name if isinstance(name, str) else None


def roots_of(raw: JsonObject) -> list[Root]:
    """The roots of a ``ListRootsResult`` (raises ClientRequestError when malformed)."""
    roots = checked("roots/list", raw)["roots"]
    return [Root(root) for root in roots]
