"""Stops elected by the market, over real sessions: a trade at the venue (another participant crossing
the simulator's house liquidity) goes out in the venue's market data, and the broker releases the stops
it holds when that trade is at or through their StopPx - no test-only MarketPrice command.

SQLite only: the journal paths are covered by test_spine on both backends.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import native
from fix_engine import codec
from oms import commands as c
from oms.enums import OrdStatus, Side
from tests.conftest import Stack
from tests.e2e.scenario import (
    FILLED,
    NEW,
    TRADE,
    seq,
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


def poll(what: str, ok: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def on_engine(stack: Stack, fn: Callable[[], object]) -> object:
    """`fn` run on the engine thread, after everything submitted before it was handled."""
    answer: queue.Queue[object] = queue.Queue()
    stack.app.engine.submit(c.EngineCall(fn, answer.put))  # type: ignore[attr-defined]
    return answer.get(timeout=10)


def bids_at_venue(stack: Stack, symbol: str) -> list[tuple[int, int, int]]:
    venue = stack.venue("VENUE-B")
    with venue.paused():  # the book is the venue's to change: read it under its lock
        return list(venue.books[symbol].depth(native.BUY, 20))


def test_stop_and_stop_limit_are_elected_by_a_venue_trade(stack: Stack) -> None:
    # IBM trades on VENUE-B around 150.00: house bids 149.99-149.95, asks 150.01-150.05, no trade yet.
    c1 = stack.client()
    eng = stack.app.engine  # type: ignore[attr-defined]
    stop = c1.new_order("IBM", "1", 100, ord_type="3", extra=[(codec.STOP_PX, "150.01")])
    stop_limit = c1.new_order("IBM", "1", 100, ord_type="4", price="150.00", extra=[(codec.STOP_PX, "150.01")])
    for cl in (stop, stop_limit):
        c1.wait_report(cl, status=NEW)
    orders = {o.cl_ord_id: o for o in eng.orders.values()}

    def held() -> object:
        return [orders[cl].held and not orders[cl].children for cl in (stop, stop_limit)]

    assert on_engine(stack, held) == [True, True]

    venue = stack.venue("VENUE-B")
    # A trade below the stops: another participant sells into the house bid at 149.99.
    venue.house_order("IBM", Side.SELL, Decimal("149.99"), 100)
    poll("the engine saw the venue's trade", lambda: eng.last_price.get("IBM") is not None)
    assert on_engine(stack, held) == [True, True]  # read after that market data was handled
    assert (15000, 100, 1) not in bids_at_venue(stack, "IBM")

    # A trade at the stops' StopPx: another participant lifts the house offer at 150.01.
    venue.house_order("IBM", Side.BUY, Decimal("150.01"), 100)
    # The stop goes out as a market order and fills at the venue.
    fill = c1.wait_report(stop, status=FILLED)
    assert fill[codec.LAST_MKT] == "VENUE-B" and Decimal(fill[codec.LAST_PX]) >= Decimal("150.01")
    assert seq(c1, stop) == [(NEW, NEW, "100", "0", "100", "0"), (TRADE, FILLED, "100", "100", "0", "100")]
    # The stop-limit goes out as a limit order and rests at its limit, the venue's best bid.
    poll("the stop-limit's child rests at VENUE-B", lambda: not orders[stop_limit].held and any(
        ch.status is OrdStatus.NEW for ch in orders[stop_limit].children.values()))
    assert (15000, 100, 1) in bids_at_venue(stack, "IBM")
    assert seq(c1, stop_limit) == [(NEW, NEW, "100", "0", "100", "0")]
    # and it works there at that limit: a seller at 150.00 fills it.
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 100)
    done = c1.wait_report(stop_limit, status=FILLED)
    assert (done[codec.LAST_PX], done[codec.LAST_MKT]) == ("150", "VENUE-B")
    assert seq(c1, stop_limit)[-1] == (TRADE, FILLED, "100", "100", "0", "100")
