"""fixoms.collector: `fixoms run` takes the cyclic collector over; the engine thread collects the young
generation when idle and freezes what survives. Run here in the test process, restored afterwards."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fixoms import collector


@pytest.fixture
def taken_over() -> Iterator[None]:
    threshold = gc.get_threshold()
    collector.enable()
    try:
        yield
    finally:
        collector._enabled = False
        gc.unfreeze()
        gc.set_threshold(*threshold)
        gc.enable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_young_garbage_cycles_are_collected_when_idle_and_survivors_frozen(taken_over: None) -> None:
    assert not gc.isenabled()
    frozen = gc.get_freeze_count()
    kept = [Node() for _ in range(collector.IDLE_AT)]  # alive: frozen by the next collection
    a, b = Node(), Node()  # garbage in a cycle: only the cyclic collector frees it
    a.other, b.other = b, a
    cycle = weakref.ref(a)
    del a, b
    collector.housekeeping(idle=False)  # a batch just ended: under FORCE_AT young objects, nothing is done
    assert cycle() is not None
    collector.housekeeping(idle=True)  # about to wait for work: the young generation is collected
    assert cycle() is None
    assert gc.get_freeze_count() >= frozen + len(kept)  # the survivors are out of the collector's sight
    assert not any(isinstance(o, Node) for o in gc.get_objects())
    assert gc.get_count()[0] < collector.IDLE_AT


def test_housekeeping_does_nothing_unless_enabled() -> None:
    assert not collector._enabled
    garbage = [Node() for _ in range(collector.FORCE_AT // 10)]
    before = gc.get_freeze_count()
    collector.housekeeping(idle=True)
    assert gc.get_freeze_count() == before
    del garbage
