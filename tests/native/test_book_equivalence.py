"""Stateful equivalence: the C book and the pure-Python reference, driven by
the same random operations, must emit identical events and end every step in
identical states."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from native import (
    BUY,
    DAY,
    EVENT_SIZE,
    EVENT_STRUCT,
    FOK,
    GTC,
    IOC,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_MAKER,
    STP_CANCEL_TAKER,
    STP_NONE,
    Event,
    OpTuple,
    ReferenceBook,
    format_event,
    op_add,
    op_cancel,
    op_market,
    op_replace,
    pack_ops,
)
from tests.native import load_book

book_mod = load_book()
Book = book_mod.Book

MIN_PRICE = 1000
MAX_PRICE = 1012
MAX_ORDERS = 12
MAX_QTY = (2**63 - 1) // MAX_ORDERS
U64_MAX = 2**64 - 1

# Mostly small ids so cancels/replaces hit live orders and adds collide, plus
# the extremes of the unsigned 64-bit range.
ids = st.one_of(st.integers(0, 24), st.sampled_from([U64_MAX, U64_MAX - 1, 2**63]))
sides = st.sampled_from([BUY, SELL])
# At, inside and just outside the band.
prices = st.one_of(
    st.integers(MIN_PRICE, MAX_PRICE),
    st.sampled_from([MIN_PRICE, MAX_PRICE, MIN_PRICE - 1, MAX_PRICE + 1, -(2**63), 2**63 - 1]),
)
qtys = st.one_of(
    st.integers(1, 12),
    st.integers(1, 60),
    st.sampled_from([0, -1, MAX_QTY, MAX_QTY + 1, MAX_QTY // 2]),
)
tifs = st.sampled_from([GTC, GTC, DAY, IOC, FOK])
owners = st.one_of(st.just(0), st.integers(1, 3), st.just(U64_MAX))
displays = st.one_of(st.just(0), st.just(0), st.integers(1, 4), st.sampled_from([-1, 10**12]))
stps = st.sampled_from([STP_NONE, STP_CANCEL_TAKER, STP_CANCEL_MAKER, STP_CANCEL_BOTH])

add_ops = st.builds(op_add, ids, sides, prices, qtys, tifs, owners, displays, stps)
market_ops = st.builds(op_market, ids, sides, qtys, owners, stps)
cancel_ops = st.builds(op_cancel, ids)
replace_ops = st.builds(op_replace, ids, prices, qtys)
any_op = st.one_of(add_ops, add_ops, market_ops, cancel_ops, replace_ops)


def snapshot(b: Any, known_ids: set[int]) -> tuple[object, ...]:
    return (
        b.order_count(),
        len(b),
        b.best_bid(),
        b.best_ask(),
        b.depth(BUY, 100),
        b.depth(SELL, 100),
        {i: b.get(i) for i in sorted(known_ids)},
        [b.level_orders(s, p) for s in (BUY, SELL) for p in range(MIN_PRICE, MAX_PRICE + 1)],
    )


def explain(c: list[Event], r: list[Event]) -> str:
    return "C:\n  " + "\n  ".join(map(format_event, c)) + "\nref:\n  " + "\n  ".join(map(format_event, r))


class BookEquivalence(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.c = Book(MIN_PRICE, MAX_PRICE, MAX_ORDERS)
        self.r = ReferenceBook(MIN_PRICE, MAX_PRICE, MAX_ORDERS)
        self.known: set[int] = set()

    def same(self, c_events: Any, r_events: Any) -> None:
        c_list, r_list = list(c_events), list(r_events)
        assert c_list == r_list, explain(c_list, r_list)

    @rule(op=add_ops)
    def add(self, op: OpTuple) -> None:
        _, side, tif, stp, oid, price, qty, display, owner = op
        self.known.add(oid)
        self.same(
            self.c.add(oid, side, price, qty, tif, owner, display, stp),
            self.r.add(oid, side, price, qty, tif=tif, owner=owner, display=display, stp=stp),
        )

    @rule(oid=ids, side=sides, qty=qtys, owner=owners, stp=stps)
    def market(self, oid: int, side: int, qty: int, owner: int, stp: int) -> None:
        self.known.add(oid)
        self.same(
            self.c.market(oid, side, qty, owner, stp), self.r.market(oid, side, qty, owner=owner, stp=stp)
        )

    @rule(oid=ids)
    def cancel(self, oid: int) -> None:
        self.same(self.c.cancel(oid), self.r.cancel(oid))

    @precondition(lambda self: len(self.r) > 0)
    @rule(data=st.data(), price=prices, qty=qtys)
    def replace_live(self, data: st.DataObject, price: int, qty: int) -> None:
        live = sorted(i for i in self.known if self.r.get(i) is not None)
        oid = data.draw(st.sampled_from(live))
        self.same(self.c.replace(oid, price, qty), self.r.replace(oid, price, qty))

    @rule(oid=ids, price=prices, qty=qtys)
    def replace_any(self, oid: int, price: int, qty: int) -> None:
        self.same(self.c.replace(oid, price, qty), self.r.replace(oid, price, qty))

    @rule(ops=st.lists(any_op, min_size=1, max_size=10), packed=st.booleans())
    def batch(self, ops: list[OpTuple], packed: bool) -> None:
        self.known.update(op[4] for op in ops)
        if packed:
            arr = book_mod.ops_array(len(ops))
            for i, op in enumerate(ops):
                arr[i] = (op[0], op[1], op[2], op[3], 0, op[4], op[5], op[6], op[7], op[8])
            c_events = self.c.execute_packed(arr, len(ops))
            r_events = self.r.execute_packed(pack_ops(ops), len(ops))
        else:
            c_events = self.c.execute(ops)
            r_events = self.r.execute(ops)
        self.same(c_events, r_events)
        assert [c_events.op_index(i) for i in range(len(c_events))] == r_events.op_indices

    @rule(op=any_op)
    def tight_event_buffer(self, op: OpTuple) -> None:
        """One event short is refused untouched; exactly enough succeeds."""
        self.known.add(op[4])
        before = snapshot(self.c, self.known)
        expected = self.r.execute([op]).to_list()
        packed = pack_ops([op])
        short = bytearray(EVENT_SIZE * (len(expected) - 1))
        status, next_op, n = self.c.execute_into(packed, 1, short)
        assert (status, next_op, n) == (book_mod.FX_ERR_EVENT_BUFFER, 0, 0)
        assert snapshot(self.c, self.known) == before, "refused operation changed the book"
        exact = bytearray(EVENT_SIZE * len(expected))
        assert self.c.execute_into(packed, 1, exact) == (book_mod.FX_OK, 1, len(expected))
        got = [Event._make(t) for t in EVENT_STRUCT.iter_unpack(exact)]
        assert got == expected, explain(got, expected)

    @invariant()
    def identical_state(self) -> None:
        if not hasattr(self, "c"):
            return
        self.c.check()
        self.r.check()
        assert snapshot(self.c, self.known) == snapshot(self.r, self.known)


BookEquivalence.TestCase.settings = settings(
    max_examples=int(os.environ.get("FIXOMS_HYPOTHESIS_EXAMPLES", "250")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBookEquivalence = BookEquivalence.TestCase
