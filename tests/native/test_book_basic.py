"""Hand-written scenarios pinning the documented semantics (docs/native-book.md),
run against both the C book and the reference."""

from __future__ import annotations

from typing import Any

import pytest

from native import (
    BUY,
    DAY,
    EV_CANCELED,
    EV_FILL,
    EV_REJECTED,
    EV_REPLACED,
    EV_RESTED,
    EVENT_SIZE,
    FOK,
    GTC,
    IOC,
    MAX_ICEBERG_SLICES,
    R_BAD_PARAM,
    R_BAD_QTY,
    R_BOOK_FULL,
    R_DUPLICATE_ID,
    R_FOK_UNFILLABLE,
    R_IOC_UNFILLED,
    R_PRICE_OUT_OF_BAND,
    R_SELF_MATCH,
    R_UNKNOWN_ID,
    R_USER,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_MAKER,
    STP_CANCEL_TAKER,
    STP_NONE,
    Event,
    OrderInfo,
    ReferenceBook,
    op_add,
    op_cancel,
    op_market,
    op_replace,
    pack_ops,
)
from tests.native import load_book

book_mod = load_book()
Book = book_mod.Book


def fill(taker: int, maker: int, px: int, qty: int, leaves: int, maker_leaves: int) -> Event:
    return Event(EV_FILL, taker, maker, px, qty, leaves, maker_leaves, 0)


def rested(oid: int, px: int, qty: int) -> Event:
    return Event(EV_RESTED, oid, 0, px, qty, qty, 0, 0)


def canceled(oid: int, px: int, qty: int, reason: int) -> Event:
    return Event(EV_CANCELED, oid, 0, px, qty, 0, 0, reason)


def replaced(oid: int, px: int, qty: int) -> Event:
    return Event(EV_REPLACED, oid, 0, px, qty, qty, 0, 0)


def rejected(oid: int, reason: int) -> Event:
    return Event(EV_REJECTED, oid, 0, 0, 0, 0, 0, reason)


@pytest.fixture(params=["C", "reference"])
def make(request: pytest.FixtureRequest) -> Any:
    cls = Book if request.param == "C" else ReferenceBook

    def factory(min_price: int = 90, max_price: int = 110, max_orders: int = 100) -> Any:
        return cls(min_price, max_price, max_orders)

    return factory


def test_rest_and_queries(make: Any) -> None:
    b = make()
    assert b.add(1, BUY, 100, 5) == [rested(1, 100, 5)]
    assert b.add(2, BUY, 100, 7, owner=3) == [rested(2, 100, 7)]
    assert b.add(3, BUY, 99, 4) == [rested(3, 99, 4)]
    assert b.add(4, SELL, 102, 6, tif=DAY) == [rested(4, 102, 6)]
    assert b.best_bid() == (100, 12)
    assert b.best_ask() == (102, 6)
    assert b.depth(BUY, 5) == [(100, 12, 2), (99, 4, 1)]
    assert b.depth(SELL, 1) == [(102, 6, 1)]
    assert b.get(2) == OrderInfo(2, BUY, 100, 7, 7, 3)
    assert b.get(99) is None
    assert b.level_orders(BUY, 100) == [1, 2]
    assert b.order_count() == len(b) == 4
    b.check()


def test_empty_book(make: Any) -> None:
    b = make()
    assert b.best_bid() is None and b.best_ask() is None
    assert b.depth(BUY, 10) == [] and b.depth(SELL, 10) == []
    assert len(b) == 0
    b.check()


def test_cross_fills_in_price_then_time_priority(make: Any) -> None:
    b = make()
    b.add(1, SELL, 101, 3)
    b.add(2, SELL, 100, 2)
    b.add(3, SELL, 100, 4)
    assert b.add(10, BUY, 101, 8) == [
        fill(10, 2, 100, 2, 6, 0),
        fill(10, 3, 100, 4, 2, 0),
        fill(10, 1, 101, 2, 0, 1),
    ]
    assert b.get(1) == OrderInfo(1, SELL, 101, 1, 1, 0)
    assert b.best_ask() == (101, 1) and b.best_bid() is None
    b.check()


def test_partial_fill_rests_remainder(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 3)
    assert b.add(2, BUY, 105, 5) == [fill(2, 1, 100, 3, 2, 0), rested(2, 105, 2)]
    assert b.best_bid() == (105, 2)


def test_ioc_and_market(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 3)
    b.add(2, SELL, 104, 3)
    assert b.add(3, BUY, 101, 5, tif=IOC) == [fill(3, 1, 100, 3, 2, 0), canceled(3, 101, 2, R_IOC_UNFILLED)]
    assert b.market(4, BUY, 10) == [fill(4, 2, 104, 3, 7, 0), canceled(4, 0, 7, R_IOC_UNFILLED)]
    assert b.market(5, SELL, 1) == [canceled(5, 0, 1, R_IOC_UNFILLED)]
    assert len(b) == 0


def test_market_reaches_the_band_edge(make: Any) -> None:
    b = make()
    b.add(1, SELL, 110, 1)
    b.add(2, BUY, 90, 1)
    assert b.market(3, BUY, 1) == [fill(3, 1, 110, 1, 0, 0)]
    assert b.market(4, SELL, 1) == [fill(4, 2, 90, 1, 0, 0)]


def test_fok(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 3)
    b.add(2, SELL, 101, 3)
    assert b.add(3, BUY, 101, 7, tif=FOK) == [canceled(3, 101, 7, R_FOK_UNFILLABLE)]
    assert len(b) == 2  # nothing traded
    assert b.add(4, BUY, 100, 4, tif=FOK) == [canceled(4, 100, 4, R_FOK_UNFILLABLE)]
    assert b.add(5, BUY, 101, 6, tif=FOK) == [fill(5, 1, 100, 3, 3, 0), fill(5, 2, 101, 3, 0, 0)]
    assert b.add(6, BUY, 101, 1, tif=FOK) == [canceled(6, 101, 1, R_FOK_UNFILLABLE)]


def test_fok_counts_hidden_iceberg_quantity(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 10, display=2)
    assert b.add(2, BUY, 100, 10, tif=FOK) == [fill(2, 1, 100, 2, 8 - 2 * i, 8 - 2 * i) for i in range(5)]


def test_fok_with_self_match(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 2)
    b.add(2, SELL, 100, 5, owner=7)
    b.add(3, SELL, 100, 4)
    # cancel-taker: the taker would die at order 2 holding 2 lots -> killed untouched
    assert b.add(4, BUY, 100, 3, tif=FOK, owner=7) == [canceled(4, 100, 3, R_FOK_UNFILLABLE)]
    # ... but is fillable when it completes before reaching order 2
    assert b.add(5, BUY, 100, 2, tif=FOK, owner=7) == [fill(5, 1, 100, 2, 0, 0)]
    # cancel-maker: same-owner makers are skipped in the check and canceled in the fill
    assert b.add(6, BUY, 100, 4, tif=FOK, owner=7, stp=STP_CANCEL_MAKER) == [
        canceled(2, 100, 5, R_SELF_MATCH),
        fill(6, 3, 100, 4, 0, 0),
    ]


def test_cancel(make: Any) -> None:
    b = make()
    b.add(1, BUY, 95, 5)
    assert b.cancel(1) == [canceled(1, 95, 5, R_USER)]
    assert b.cancel(1) == [rejected(1, R_UNKNOWN_ID)]
    assert b.best_bid() is None
    b.check()


def test_replace_down_keeps_priority(make: Any) -> None:
    b = make()
    b.add(1, BUY, 100, 5)
    b.add(2, BUY, 100, 5)
    assert b.replace(1, 100, 3) == [replaced(1, 100, 3)]
    assert b.level_orders(BUY, 100) == [1, 2]
    assert b.replace(1, 100, 3) == [replaced(1, 100, 3)]
    assert b.level_orders(BUY, 100) == [1, 2]
    assert b.best_bid() == (100, 8)


def test_replace_up_or_reprice_loses_priority(make: Any) -> None:
    b = make()
    b.add(1, BUY, 100, 5)
    b.add(2, BUY, 100, 5)
    assert b.replace(1, 100, 6) == [replaced(1, 100, 6)]
    assert b.level_orders(BUY, 100) == [2, 1]
    assert b.replace(2, 99, 5) == [replaced(2, 99, 5)]
    assert b.replace(2, 100, 5) == [replaced(2, 100, 5)]
    assert b.level_orders(BUY, 100) == [1, 2]
    assert b.level_orders(BUY, 99) == []


def test_replace_that_crosses_trades(make: Any) -> None:
    b = make()
    b.add(1, SELL, 102, 3)
    b.add(2, BUY, 100, 5)
    assert b.replace(2, 102, 5) == [replaced(2, 102, 5), fill(2, 1, 102, 3, 2, 0)]
    assert b.get(2) == OrderInfo(2, BUY, 102, 2, 2, 0)
    b.add(3, SELL, 103, 2)
    assert b.replace(3, 102, 2) == [replaced(3, 102, 2), fill(3, 2, 102, 2, 0, 0)]
    assert len(b) == 0


def test_replace_rejects(make: Any) -> None:
    b = make()
    b.add(1, BUY, 100, 5)
    assert b.replace(9, 100, 1) == [rejected(9, R_UNKNOWN_ID)]
    assert b.replace(1, 100, 0) == [rejected(1, R_BAD_QTY)]
    assert b.replace(1, 111, 1) == [rejected(1, R_PRICE_OUT_OF_BAND)]
    assert b.get(1) == OrderInfo(1, BUY, 100, 5, 5, 0)


def test_iceberg_replenishes_at_the_back(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 10, display=3)
    b.add(2, SELL, 100, 4)
    assert b.best_ask() == (100, 7)
    assert b.get(1) == OrderInfo(1, SELL, 100, 10, 3, 0)
    # the slice of 3 goes, a new slice of 3 queues behind order 2
    assert b.add(3, BUY, 100, 5) == [fill(3, 1, 100, 3, 2, 7), fill(3, 2, 100, 2, 0, 2)]
    assert b.level_orders(SELL, 100) == [2, 1]
    assert b.get(1) == OrderInfo(1, SELL, 100, 7, 3, 0)
    assert b.add(4, BUY, 100, 20) == [
        fill(4, 2, 100, 2, 18, 0),
        fill(4, 1, 100, 3, 15, 4),
        fill(4, 1, 100, 3, 12, 1),
        fill(4, 1, 100, 1, 11, 0),
        rested(4, 100, 11),
    ]
    b.check()


def test_iceberg_rests_with_its_display(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 2)
    assert b.add(2, BUY, 100, 9, display=4) == [fill(2, 1, 100, 2, 7, 0), rested(2, 100, 7)]
    assert b.get(2) == OrderInfo(2, BUY, 100, 7, 4, 0)
    assert b.best_bid() == (100, 4)
    assert b.replace(2, 100, 3) == [replaced(2, 100, 3)]
    assert b.get(2) == OrderInfo(2, BUY, 100, 3, 3, 0)


@pytest.mark.parametrize(
    ("stp", "expected", "left"),
    [
        (STP_CANCEL_TAKER, [fill(9, 1, 100, 1, 4, 0), canceled(9, 100, 4, R_SELF_MATCH)], [2, 3]),
        (
            STP_CANCEL_MAKER,
            [fill(9, 1, 100, 1, 4, 0), canceled(2, 100, 2, R_SELF_MATCH), fill(9, 3, 100, 4, 0, 0)],
            [],
        ),
        (
            STP_CANCEL_BOTH,
            [fill(9, 1, 100, 1, 4, 0), canceled(2, 100, 2, R_SELF_MATCH), canceled(9, 100, 4, R_SELF_MATCH)],
            [3],
        ),
        (STP_NONE, [fill(9, 1, 100, 1, 4, 0), fill(9, 2, 100, 2, 2, 0), fill(9, 3, 100, 2, 0, 2)], [3]),
    ],
)
def test_self_match_prevention(make: Any, stp: int, expected: list[Event], left: list[int]) -> None:
    b = make()
    b.add(1, SELL, 100, 1, owner=5)
    b.add(2, SELL, 100, 2, owner=7)
    b.add(3, SELL, 100, 4, owner=8)
    assert b.add(9, BUY, 100, 5, owner=7, stp=stp) == expected
    assert b.level_orders(SELL, 100) == left
    b.check()


def test_owner_zero_never_self_matches(make: Any) -> None:
    b = make()
    b.add(1, SELL, 100, 1)
    assert b.add(2, BUY, 100, 1, stp=STP_CANCEL_BOTH) == [fill(2, 1, 100, 1, 0, 0)]


def test_rejects(make: Any) -> None:
    b = make(max_orders=2)
    assert b.add(1, BUY, 100, 0) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 100, -3) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 100, b.max_qty + 1) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 100, 5, display=-1) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 89, 5) == [rejected(1, R_PRICE_OUT_OF_BAND)]
    assert b.add(1, BUY, 111, 5) == [rejected(1, R_PRICE_OUT_OF_BAND)]
    assert b.add(1, 2, 100, 5) == [rejected(1, R_BAD_PARAM)]
    assert b.add(1, BUY, 100, 5, tif=9) == [rejected(1, R_BAD_PARAM)]
    assert b.add(1, BUY, 100, 5, stp=4) == [rejected(1, R_BAD_PARAM)]
    assert b.market(1, BUY, 0) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 90, b.max_qty) == [rested(1, 90, b.max_qty)]
    assert b.add(1, SELL, 110, 1) == [rejected(1, R_DUPLICATE_ID)]
    assert b.market(1, SELL, 1) == [rejected(1, R_DUPLICATE_ID)]
    assert b.add(2, BUY, 91, 1) == [rested(2, 91, 1)]
    assert b.add(3, BUY, 92, 1) == [rejected(3, R_BOOK_FULL)]
    # only resting orders need a slot
    assert b.add(3, BUY, 92, 1, tif=IOC) == [canceled(3, 92, 1, R_IOC_UNFILLED)]
    assert len(b) == 2
    b.check()


def test_iceberg_slice_limit(make: Any) -> None:
    b = make()
    assert b.add(1, BUY, 100, MAX_ICEBERG_SLICES + 1, display=1) == [rejected(1, R_BAD_QTY)]
    assert b.add(1, BUY, 100, MAX_ICEBERG_SLICES, display=1) == [rested(1, 100, MAX_ICEBERG_SLICES)]
    assert b.replace(1, 100, MAX_ICEBERG_SLICES + 1) == [rejected(1, R_BAD_QTY)]


def test_extreme_ids(make: Any) -> None:
    b = make()
    top = 2**64 - 1
    assert b.add(top, BUY, 100, 1) == [rested(top, 100, 1)]
    assert b.add(0, SELL, 100, 1) == [fill(0, top, 100, 1, 0, 0)]
    assert len(b) == 0


def test_batch_api(make: Any) -> None:
    b = make()
    ops = [
        op_add(1, SELL, 100, 3),
        op_add(2, SELL, 101, 3, display=1),
        op_market(3, BUY, 4),
        op_cancel(77),
        op_replace(2, 102, 2),
        (9, 0, 0, 0, 5, 0, 0, 0, 0),  # unknown operation type
    ]
    expected = [
        rested(1, 100, 3),
        rested(2, 101, 3),
        fill(3, 1, 100, 3, 1, 0),
        fill(3, 2, 101, 1, 0, 2),
        rejected(77, R_UNKNOWN_ID),
        replaced(2, 102, 2),
        rejected(5, R_BAD_PARAM),
    ]
    events = b.execute(ops)
    assert len(events) == len(expected)
    assert events.to_list() == expected
    assert list(events) == expected
    assert events[2] == expected[2] and events[-1] == expected[-1]
    assert [events.op_index(i) for i in range(len(events))] == [0, 1, 2, 2, 3, 4, 5]
    b2 = make()
    assert b2.execute_packed(pack_ops(ops), len(ops)).to_list() == expected


def test_c_batch_views() -> None:
    b = Book(1, 1000, 100)
    first = b.execute([op_add(1, BUY, 10, 5), op_add(2, SELL, 10, 2)])
    arr = first.array()
    assert list(arr["kind"]) == [EV_RESTED, EV_FILL]
    assert list(arr["op_index"]) == [0, 1]
    assert int(arr["maker_leaves"][1]) == 3
    assert len(first.raw()) == 2 * EVENT_SIZE
    saved = first.copy()
    b.execute([op_cancel(1)])
    with pytest.raises(RuntimeError):
        first.to_list()
    assert len(saved) == 2 * EVENT_SIZE
    # numpy pre-packed operations
    ops = book_mod.ops_array(2)
    ops[0] = (1, BUY, GTC, STP_CANCEL_TAKER, 0, 5, 20, 4, 0, 0)
    ops[1] = (3, 0, 0, 0, 0, 5, 0, 0, 0, 0)
    assert b.execute_packed(ops).to_list() == [rested(5, 20, 4), canceled(5, 20, 4, R_USER)]


def test_c_batch_grows_its_event_buffer() -> None:
    b = Book(1, 1000, 10_000)
    ops = [op_add(i, SELL, 500, 1) for i in range(1, 5001)] + [op_market(9999, BUY, 5000)]
    events = b.execute(ops)
    assert len(events) == 10_000
    assert events[-1] == fill(9999, 5000, 500, 1, 0, 0)
    assert len(b) == 0


def test_c_single_op_grows_its_event_buffer() -> None:
    b = Book(1, 1000, 10_000)
    b.execute([op_add(i, SELL, 500, 1) for i in range(1, 2001)])
    events = b.market(9999, BUY, 2000)
    assert len(events) == 2000 and events[-1] == fill(9999, 2000, 500, 1, 0, 0)


def test_c_too_small_event_buffer_is_refused_whole() -> None:
    b = Book(1, 1000, 100)
    b.execute([op_add(1, SELL, 10, 1), op_add(2, SELL, 11, 1)])
    ops = pack_ops([op_add(3, BUY, 11, 5), op_cancel(3)])
    # two fills and a rest need three events
    status, next_op, n = b.execute_into(ops, 2, bytearray(2 * EVENT_SIZE))
    assert (status, next_op, n) == (book_mod.FX_ERR_EVENT_BUFFER, 0, 0)
    assert len(b) == 2 and b.best_ask() == (10, 1)
    b.check()
    buf = bytearray(3 * EVENT_SIZE)
    status, next_op, n = b.execute_into(ops, 2, buf)
    assert (status, next_op, n) == (book_mod.FX_ERR_EVENT_BUFFER, 1, 3)  # the cancel did not fit
    assert b.get(3) == OrderInfo(3, BUY, 11, 3, 3, 0)
    status, next_op, n = b.execute_into(ops, 2, buf, first=1)
    assert (status, next_op, n) == (book_mod.FX_OK, 2, 1)
    assert b.get(3) is None
    b.check()


def test_c_constructor_limits() -> None:
    with pytest.raises(ValueError):
        Book(10, 9, 10)
    with pytest.raises(ValueError):
        Book(1, 10, 0)
    with pytest.raises(ValueError):
        ReferenceBook(0, 2**31, 10)


def test_the_engine_does_not_import_numpy_only_the_array_views_do() -> None:
    # numpy is optional and only the array views use it; importing it cost every engine start ~80 ms.
    import subprocess
    import sys

    code = ("import sys, fixoms.app, native; assert 'numpy' not in sys.modules; "
            "assert native.OP_DTYPE.itemsize == native.OP_SIZE; assert 'numpy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
