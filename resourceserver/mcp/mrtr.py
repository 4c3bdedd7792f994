"""Multi round-trip requests: questions to the client in the 2026-07-28 era.

MCP 2026-07-28 "Multi Round-Trip Requests" (SEP-2322): a handler that needs input ends the
request with an ``InputRequiredResult`` (``inputRequests`` plus a sealed ``requestState``);
the client retries with ``inputResponses`` and the state, and the handler runs again from the
start. Each question has a key; on the retry, :class:`AnswerBook` answers it from the answers
sealed in the state or from the retry's ``inputResponses``, and only a question nobody
answered yet ends the call again. Missing answers are asked again, extra ones are ignored, an
answer given to a different question than the one asked now is not used (SEP-2322 §Error
Handling). The sealed state records only the answers this run used, each with a digest of its
question.

:class:`ModernChannel` is the :class:`~resourceserver.mcp.context.Channel` of one modern call:
notifications go to the live response stream; questions are answered from the book or raise
:class:`~resourceserver.mcp.interrupts.InputRequired`; once the call became a task they are
asked through the task (``tasks/get`` shows them, ``tasks/update`` answers them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from resourceserver.mcp.errors import INVALID_PARAMS, JsonRpcError
from resourceserver.mcp.interrupts import InputRequired, ProtocolFault
from resourceserver.mcp.request_state import Binding, RequestStateSealer
from resourceserver.mcp.results import shape_problem

JsonObject = dict[str, Any]
Notify = Callable[[str, JsonObject], Awaitable[None]]

_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KIND = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
#: Questions one request may leave open at once.
MAX_OPEN_QUESTIONS = 32


class TaskInput(Protocol):
    """Where a task's questions wait for ``tasks/update`` (see :mod:`resourceserver.mcp.tasks`)."""

    async def ask(self, key: str, question: JsonObject) -> JsonObject:
        """Record the question on the task and return the client's answer."""
        ...


def question_digest(question: JsonObject) -> str:
    canonical = json.dumps(question, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def _invalid(message: str) -> ProtocolFault:
    return ProtocolFault(JsonRpcError(INVALID_PARAMS, f"Invalid params: {message}"))


class AnswerBook:
    """The answers one run of a handler may use, and the questions it left open."""

    def __init__(self, recorded: JsonObject, offered: JsonObject) -> None:
        #: key -> [question digest, answer], from the sealed state.
        self.recorded = recorded
        #: key -> answer, from this request's ``inputResponses``.
        self.offered = offered
        #: key -> [digest, answer] used by this run (what the next state seals).
        self.used: JsonObject = {}
        #: key -> question asked and not answered.
        self.open: dict[str, JsonObject] = {}

    @classmethod
    def from_params(
        cls, params: JsonObject, sealer: RequestStateSealer, binding: Binding
    ) -> AnswerBook:
        """Read ``inputResponses`` and ``requestState`` (raises JsonRpcError ``-32602``)."""
        offered = params.get("inputResponses", {})
        if offered is None or not isinstance(offered, dict):
            raise JsonRpcError(INVALID_PARAMS, "Invalid params: 'inputResponses' must be an object")
        for key, answer in offered.items():
            if not isinstance(answer, dict):
                raise JsonRpcError(
                    INVALID_PARAMS,
                    f"Invalid params: inputResponses[{json.dumps(key)[:80]}] must be an object",
                )
        recorded: JsonObject = {}
        if "requestState" in params:
            answers = sealer.open(params["requestState"], binding).get("answers")
            recorded = answers if isinstance(answers, dict) else {}
        return cls(recorded, offered)

    def answer(self, key: str, question: JsonObject) -> JsonObject | None:
        """The answer to ``question`` under ``key``, or None (then it is open)."""
        digest = question_digest(question)
        entry = self.recorded.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == digest:
            self.used[key] = entry
            return dict(entry[1])
        if key in self.offered:
            answer = self.offered[key]
            problem = shape_problem(str(question["method"]), answer)
            if problem is not None:
                raise _invalid(f"inputResponses[{json.dumps(key)}] is not valid: {problem}")
            self.used[key] = [digest, answer]
            return dict(answer)
        if len(self.open) >= MAX_OPEN_QUESTIONS and key not in self.open:
            raise _invalid(f"a request may leave at most {MAX_OPEN_QUESTIONS} questions open")
        self.open[key] = question
        return None

    def input_required(self, sealer: RequestStateSealer, binding: Binding) -> JsonObject:
        """The ``InputRequiredResult`` asking the open questions."""
        return {
            "resultType": "input_required",
            "inputRequests": dict(self.open),
            "requestState": sealer.seal(binding, {"answers": self.used}),
        }


class ModernChannel:
    """The channel of one 2026-07-28 call: inline (MRTR) until it becomes a task."""

    #: ``Context`` passes the author's question keys (``key=``) to this channel.
    answers_by_key = True

    def __init__(self, book: AnswerBook, notify: Notify) -> None:
        self.book = book
        self._notify = notify
        self._counts: dict[str, int] = {}
        self._task: TaskInput | None = None
        #: Set (by the call runner) once the call's task exists: questions then go there.
        self.in_task = asyncio.Event()
        #: Set by ``Context.continue_as_task``: the runner should start the task now.
        self.task_wanted = asyncio.Event()
        #: The status message ``continue_as_task`` gave, for the new task.
        self.status_message: str | None = None

    def enter_task(self, task: TaskInput) -> None:
        """From now on, questions wait in ``task`` and notifications are not delivered."""
        self._task = task
        self.in_task.set()

    async def start_task(self, status_message: str | None) -> None:
        """``Context.continue_as_task``: ask the runner for a task and wait until it exists."""
        if self.in_task.is_set():
            return
        self.status_message = status_message
        self.task_wanted.set()
        await self.in_task.wait()

    async def notify(self, method: str, params: JsonObject) -> None:
        if not self.task_wanted.is_set() and self._task is None:
            await self._notify(method, params)

    async def close_stream(self) -> None:
        """No SSE polling in 2026-07-28: a modern response stream is not resumable."""

    def _key(self, method: str, key: str | None) -> str:
        if key is not None:
            if not _KEY.match(key):
                raise ValueError(f"question key {key!r} must match {_KEY.pattern}")
            return key
        kind = _KIND.get(method, "input")
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{kind}-{self._counts[kind]}"

    async def request(self, method: str, params: JsonObject, key: str | None = None) -> JsonObject:
        name = self._key(method, key)
        question: JsonObject = {"method": method, "params": params}
        if self.task_wanted.is_set() or self._task is not None:
            await self.in_task.wait()
            assert self._task is not None  # noqa: S101 - set with in_task
            return await self._task.ask(name, question)
        answer = self.book.answer(name, question)
        if answer is None:
            raise InputRequired(name)
        return answer
