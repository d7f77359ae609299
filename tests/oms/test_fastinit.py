"""oms.fastinit: the faster __init__ builds the same objects as the dataclass's own."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from oms import commands as c
from oms import events as ev
from oms import reports
from oms.fastinit import fast_init


def _pair() -> tuple[type, type]:
    def make() -> type:
        @dataclass(frozen=True, slots=True)
        class Msg:
            a: str
            b: Decimal
            c: int | None = None
            d: str = "x"

        return Msg

    return make(), fast_init(make())


def test_same_objects_signature_and_frozen() -> None:
    slow, fast = _pair()
    assert fast.__init__ is not slow.__init__
    assert inspect.signature(fast) == inspect.signature(slow)
    for args, kwargs in [(("a", Decimal(1)), {}), (("a", Decimal(1), 3), {"d": "y"}), ((), {"b": Decimal(2), "a": ""})]:
        s, f = slow(*args, **kwargs), fast(*args, **kwargs)
        assert dataclasses.astuple(s) == dataclasses.astuple(f)
        assert repr(s).replace("Msg", "") == repr(f).replace("Msg", "")
        assert dataclasses.replace(f, d="z").d == "z"
        with pytest.raises(dataclasses.FrozenInstanceError):
            f.a = "b"  # type: ignore[misc]
    for bad_args, bad_kwargs in [((), {}), (("a",), {}), (("a", 1, 2, "d", 5), {}), (("a", 1), {"e": 1}),
                                 (("a", 1), {"a": "b"})]:
        with pytest.raises(TypeError):
            slow(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            fast(*bad_args, **bad_kwargs)


def test_leaves_what_it_cannot_reproduce() -> None:
    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KwOnly:
        a: int

    for cls in (Factory, Post, Mutable, NoSlots, KwOnly):
        before = cls.__init__
        assert fast_init(cls).__init__ is before


def test_hot_path_classes_are_fast() -> None:
    canceled = ev.OrderCanceled("OMS1-1", "IOC remainder canceled")
    assert pickle.loads(pickle.dumps(canceled)) == canceled
    assert ev.from_payload("OrderCanceled", ev.to_payload(canceled)) == canceled
    for cls in (*c.Command.__args__, *ev.Event.__args__, *reports.Outbound.__args__):  # type: ignore[attr-defined]
        assert "_s0" in cls.__init__.__code__.co_freevars, cls
