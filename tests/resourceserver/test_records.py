"""resourceserver.records.record: per-request records behave as frozen dataclasses do
(constructor, defaults, equality, hash, repr, replace), without the cost of a frozen
``__init__``."""

from __future__ import annotations

import dataclasses
from dataclasses import field

import pytest

from resourceserver.records import record


@record
class Sample:
    name: str
    count: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSample:
    name: str
    count: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)


def test_a_record_is_built_compared_and_hashed_like_a_frozen_dataclass() -> None:
    ours, theirs = Sample("a", 2, ("x",)), FrozenSample("a", 2, ("x",))
    assert ours == Sample("a", 2, ("x",)) and ours != Sample("a", 3)
    assert hash(ours) == hash(Sample("a", 2, ("x",)))
    assert hash(ours) == hash(theirs)  # same fields, same hash
    assert repr(ours) == repr(theirs).replace("FrozenSample", "Sample")
    assert Sample("b").count == 0 and Sample("b").tags == ()
    assert dataclasses.replace(ours, count=5) == Sample("a", 5, ("x",))
    assert [f.name for f in dataclasses.fields(ours)] == ["name", "count", "tags"]
    with pytest.raises(AttributeError):
        ours.other = 1  # type: ignore[attr-defined]  # slotted: no new attributes


def test_a_record_holding_a_dict_is_unhashable_as_a_frozen_one_is() -> None:
    @record
    class WithDict:
        params: dict[str, int]

    with pytest.raises(TypeError):
        hash(WithDict({"a": 1}))
