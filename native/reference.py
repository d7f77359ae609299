"""Pure-Python reference order book and the types shared with the C book.

``ReferenceBook`` implements exactly the API and the event stream of
``native.Book`` (see docs/native-book.md).  It is written for clarity first:
it is the oracle the equivalence tests compare the C core against and the
baseline the benchmark measures against, so it must stay obviously correct.

This module also owns everything the two implementations share that needs no
compiler: the integer constants, ``Event``/``OrderInfo``, the operation-tuple
helpers and the binary record layouts.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from itertools import starmap
from typing import NamedTuple

BUY = 0
SELL = 1

GTC = 0
IOC = 1
FOK = 2
DAY = 3  # behaves as GTC inside the book: expiry belongs to the session layer

STP_NONE = 0
STP_CANCEL_TAKER = 1
STP_CANCEL_MAKER = 2
STP_CANCEL_BOTH = 3

OP_ADD = 1
OP_MARKET = 2
OP_CANCEL = 3
OP_REPLACE = 4

EV_FILL = 1
EV_RESTED = 2
EV_CANCELED = 3
EV_REPLACED = 4
EV_REJECTED = 5

R_NONE = 0
R_UNKNOWN_ID = 1
R_PRICE_OUT_OF_BAND = 2
R_BOOK_FULL = 3
R_BAD_QTY = 4
R_DUPLICATE_ID = 5
R_IOC_UNFILLED = 6
R_FOK_UNFILLABLE = 7
R_SELF_MATCH = 8
R_USER = 9
R_BAD_PARAM = 10

# ceil(qty / display) may not exceed this: it bounds the fills one operation
# can produce against a single iceberg.
MAX_ICEBERG_SLICES = 100_000

INT64_MAX = (1 << 63) - 1
MAX_LEVELS = 0x7FFFFFFF
MAX_ORDERS = 0x7FFFFFFE

EVENT_KIND_NAMES = {
    EV_FILL: "FILL",
    EV_RESTED: "RESTED",
    EV_CANCELED: "CANCELED",
    EV_REPLACED: "REPLACED",
    EV_REJECTED: "REJECTED",
}
REASON_NAMES = {
    R_NONE: "NONE",
    R_UNKNOWN_ID: "UNKNOWN_ID",
    R_PRICE_OUT_OF_BAND: "PRICE_OUT_OF_BAND",
    R_BOOK_FULL: "BOOK_FULL",
    R_BAD_QTY: "BAD_QTY",
    R_DUPLICATE_ID: "DUPLICATE_ID",
    R_IOC_UNFILLED: "IOC_UNFILLED",
    R_FOK_UNFILLABLE: "FOK_UNFILLABLE",
    R_SELF_MATCH: "SELF_MATCH",
    R_USER: "USER",
    R_BAD_PARAM: "BAD_PARAM",
}


class Event(NamedTuple):
    """One book event; fields a kind does not use are 0 (see docs/native-book.md)."""

    kind: int
    order_id: int
    maker_id: int
    price: int
    qty: int
    leaves: int
    maker_leaves: int
    reason: int


class OrderInfo(NamedTuple):
    order_id: int
    side: int
    price: int
    leaves: int
    visible: int
    owner: int


# The binary records of book.h.  The event layout is chosen so that unpacking
# yields the fields in Event order directly (op_index and padding skipped).
OP_STRUCT = struct.Struct("<BBBB4xQqqqQ")
EVENT_STRUCT = struct.Struct("<I4xQQqqqqI4x")
EVENT_WITH_INDEX_STRUCT = struct.Struct("<IIQQqqqqI4x")
OP_SIZE = OP_STRUCT.size
EVENT_SIZE = EVENT_STRUCT.size

# (type, side, tif, stp, order_id, price, qty, display, owner): the field
# order of the packed record, so packing is one C-level starmap.
OpTuple = tuple[int, int, int, int, int, int, int, int, int]


def op_add(
    order_id: int,
    side: int,
    price: int,
    qty: int,
    tif: int = GTC,
    owner: int = 0,
    display: int = 0,
    stp: int = STP_CANCEL_TAKER,
) -> OpTuple:
    return (OP_ADD, side, tif, stp, order_id, price, qty, display, owner)


def op_market(order_id: int, side: int, qty: int, owner: int = 0, stp: int = STP_CANCEL_TAKER) -> OpTuple:
    return (OP_MARKET, side, IOC, stp, order_id, 0, qty, 0, owner)


def op_cancel(order_id: int) -> OpTuple:
    return (OP_CANCEL, 0, 0, 0, order_id, 0, 0, 0, 0)


def op_replace(order_id: int, price: int, qty: int) -> OpTuple:
    return (OP_REPLACE, 0, 0, 0, order_id, price, qty, 0, 0)


def pack_ops(ops: Iterable[OpTuple]) -> bytes:
    """Pack operation tuples into the fixed-size records ``execute_packed`` takes."""
    return b"".join(starmap(OP_STRUCT.pack, ops))


def unpack_ops(buf: object, n_ops: int) -> list[OpTuple]:
    """Inverse of ``pack_ops`` for the first ``n_ops`` records of any buffer."""
    mv = memoryview(buf).cast("B")  # type: ignore[arg-type]
    if n_ops < 0 or n_ops * OP_SIZE > mv.nbytes:
        raise ValueError(f"buffer of {mv.nbytes} bytes holds fewer than {n_ops} operations")
    return list(OP_STRUCT.iter_unpack(mv[: n_ops * OP_SIZE]))  # type: ignore[arg-type]


def format_event(ev: Event) -> str:
    kind = EVENT_KIND_NAMES.get(ev.kind, str(ev.kind))
    reason = REASON_NAMES.get(ev.reason, str(ev.reason))
    return (
        f"{kind}(id={ev.order_id} maker={ev.maker_id} px={ev.price} qty={ev.qty} "
        f"leaves={ev.leaves} maker_leaves={ev.maker_leaves} reason={reason})"
    )


def validate_band(min_price: int, max_price: int, max_orders: int) -> None:
    """The construction limits both implementations enforce."""
    if max_price < min_price:
        raise ValueError("max_price must be >= min_price")
    if max_price - min_price >= MAX_LEVELS:
        raise ValueError(f"price band wider than {MAX_LEVELS} ticks")
    if not 1 <= max_orders <= MAX_ORDERS:
        raise ValueError(f"max_orders must be in 1..{MAX_ORDERS}")


class EventList(list[Event]):
    """Events of one batch call, as plain ``Event`` objects.

    Has the same reading interface as the C book's lazy ``EventBatch``.
    """

    __slots__ = ("op_indices",)

    def __init__(self, events: Iterable[Event] = (), op_indices: Iterable[int] = ()) -> None:
        super().__init__(events)
        self.op_indices: list[int] = list(op_indices)

    def to_list(self) -> list[Event]:
        return list(self)

    def op_index(self, i: int) -> int:
        """Index, within the batch, of the operation that produced event ``i``."""
        return self.op_indices[i]


class _Order:
    __slots__ = ("order_id", "side", "price", "leaves", "visible", "display", "owner", "stp")

    def __init__(
        self,
        order_id: int,
        side: int,
        price: int,
        leaves: int,
        visible: int,
        display: int,
        owner: int,
        stp: int,
    ) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.leaves = leaves
        self.visible = visible
        self.display = display
        self.owner = owner
        self.stp = stp


def _too_many_slices(qty: int, display: int) -> bool:
    return display > 0 and (qty - 1) // display >= MAX_ICEBERG_SLICES


class ReferenceBook:
    """Price-time priority book in plain Python; the oracle for ``native.Book``.

    Each price level is an insertion-ordered dict (id -> order), which gives
    FIFO order, O(1) cancel and O(1) move-to-back.  Occupied prices per side
    live in an ascending list kept with bisect.  Like the C book, an instance
    belongs to one thread.
    """

    def __init__(self, min_price: int, max_price: int, max_orders: int) -> None:
        validate_band(min_price, max_price, max_orders)
        self.min_price = min_price
        self.max_price = max_price
        self.max_orders = max_orders
        self.max_qty = INT64_MAX // max_orders
        self._orders: dict[int, _Order] = {}
        self._levels: tuple[dict[int, dict[int, _Order]], dict[int, dict[int, _Order]]] = ({}, {})
        self._prices: tuple[list[int], list[int]] = ([], [])

    # -- single operations -------------------------------------------------

    def add(
        self,
        order_id: int,
        side: int,
        price: int,
        qty: int,
        tif: int = GTC,
        owner: int = 0,
        display: int = 0,
        stp: int = STP_CANCEL_TAKER,
    ) -> list[Event]:
        out: list[Event] = []
        self._add(order_id, side, price, qty, tif, owner, display, stp, False, out)
        return out

    def market(
        self, order_id: int, side: int, qty: int, owner: int = 0, stp: int = STP_CANCEL_TAKER
    ) -> list[Event]:
        out: list[Event] = []
        self._add(order_id, side, 0, qty, IOC, owner, 0, stp, True, out)
        return out

    def cancel(self, order_id: int) -> list[Event]:
        out: list[Event] = []
        self._cancel(order_id, out)
        return out

    def replace(self, order_id: int, price: int, qty: int) -> list[Event]:
        out: list[Event] = []
        self._replace(order_id, price, qty, out)
        return out

    # -- batches -----------------------------------------------------------

    def execute(self, ops: Sequence[OpTuple]) -> EventList:
        out: list[Event] = []
        indices: list[int] = []
        for i, op in enumerate(ops):
            before = len(out)
            self._run(op, out)
            indices.extend([i] * (len(out) - before))
        return EventList(out, indices)

    def execute_packed(self, ops_buffer: object, n_ops: int) -> EventList:
        return self.execute(unpack_ops(ops_buffer, n_ops))

    def _run(self, op: OpTuple, out: list[Event]) -> None:
        typ, side, tif, stp, order_id, price, qty, display, owner = op
        if typ == OP_ADD:
            self._add(order_id, side, price, qty, tif, owner, display, stp, False, out)
        elif typ == OP_CANCEL:
            self._cancel(order_id, out)
        elif typ == OP_REPLACE:
            self._replace(order_id, price, qty, out)
        elif typ == OP_MARKET:
            self._add(order_id, side, 0, qty, IOC, owner, 0, stp, True, out)
        else:
            out.append(Event(EV_REJECTED, order_id, 0, 0, 0, 0, 0, R_BAD_PARAM))

    # -- queries -----------------------------------------------------------

    def best_bid(self) -> tuple[int, int] | None:
        prices = self._prices[BUY]
        if not prices:
            return None
        px = prices[-1]
        return (px, sum(o.visible for o in self._levels[BUY][px].values()))

    def best_ask(self) -> tuple[int, int] | None:
        prices = self._prices[SELL]
        if not prices:
            return None
        px = prices[0]
        return (px, sum(o.visible for o in self._levels[SELL][px].values()))

    def depth(self, side: int, levels: int) -> list[tuple[int, int, int]]:
        if side not in (BUY, SELL):
            raise ValueError("side must be BUY or SELL")
        prices = self._prices[side]
        ordered = reversed(prices) if side == BUY else iter(prices)
        out: list[tuple[int, int, int]] = []
        for px in ordered:
            if len(out) >= levels:
                break
            q = self._levels[side][px]
            out.append((px, sum(o.visible for o in q.values()), len(q)))
        return out

    def get(self, order_id: int) -> OrderInfo | None:
        o = self._orders.get(order_id)
        if o is None:
            return None
        return OrderInfo(o.order_id, o.side, o.price, o.leaves, o.visible, o.owner)

    def level_orders(self, side: int, price: int) -> list[int]:
        """Ids resting at ``price`` on ``side`` in time priority order."""
        if side not in (BUY, SELL):
            raise ValueError("side must be BUY or SELL")
        q = self._levels[side].get(price)
        return list(q) if q else []

    def order_count(self) -> int:
        return len(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    def check(self) -> None:
        seen = 0
        for side in (BUY, SELL):
            prices = self._prices[side]
            if prices != sorted(set(prices)):
                raise AssertionError(f"side {side}: price list not sorted/unique")
            if set(prices) != set(self._levels[side]):
                raise AssertionError(f"side {side}: price list and levels disagree")
            for px, q in self._levels[side].items():
                if not q:
                    raise AssertionError(f"side {side} price {px}: empty level kept")
                if not self.min_price <= px <= self.max_price:
                    raise AssertionError(f"price {px} outside the band")
                for oid, o in q.items():
                    if self._orders.get(oid) is not o:
                        raise AssertionError(f"order {oid}: not indexed")
                    if o.side != side or o.price != px:
                        raise AssertionError(f"order {oid}: side/price disagree with its level")
                    if not 0 < o.visible <= o.leaves <= self.max_qty:
                        raise AssertionError(f"order {oid}: bad leaves/visible")
                    if o.display > 0:
                        if o.visible > o.display:
                            raise AssertionError(f"order {oid}: visible above display")
                    elif o.visible != o.leaves:
                        raise AssertionError(f"order {oid}: hidden quantity without display")
                    seen += 1
        if seen != len(self._orders):
            raise AssertionError("indexed orders not all resting")
        if len(self._orders) > self.max_orders:
            raise AssertionError("more orders than capacity")
        bid, ask = self._prices[BUY], self._prices[SELL]
        if bid and ask and bid[-1] >= ask[0]:
            raise AssertionError("book is crossed")

    # -- internals ---------------------------------------------------------

    def _add(
        self,
        order_id: int,
        side: int,
        price: int,
        qty: int,
        tif: int,
        owner: int,
        display: int,
        stp: int,
        market: bool,
        out: list[Event],
    ) -> None:
        reason = R_NONE
        if side not in (BUY, SELL) or not 0 <= stp <= 3 or not 0 <= tif <= 3:
            reason = R_BAD_PARAM
        elif (
            qty <= 0 or qty > self.max_qty or (not market and (display < 0 or _too_many_slices(qty, display)))
        ):
            reason = R_BAD_QTY
        elif not market and not self.min_price <= price <= self.max_price:
            reason = R_PRICE_OUT_OF_BAND
        elif order_id in self._orders:
            reason = R_DUPLICATE_ID
        elif not market and tif in (GTC, DAY) and len(self._orders) >= self.max_orders:
            reason = R_BOOK_FULL
        if reason:
            out.append(Event(EV_REJECTED, order_id, 0, 0, 0, 0, 0, reason))
            return
        if market:
            limit = self.max_price if side == BUY else self.min_price
            tprice = 0
        else:
            limit = tprice = price
        if tif == FOK and not self._fillable(side, limit, qty, owner, stp):
            out.append(Event(EV_CANCELED, order_id, 0, tprice, qty, 0, 0, R_FOK_UNFILLABLE))
            return
        rem, stopped = self._match(order_id, side, limit, tprice, qty, owner, stp, out)
        if stopped or rem == 0:
            return
        if tif not in (GTC, DAY):
            out.append(Event(EV_CANCELED, order_id, 0, tprice, rem, 0, 0, R_IOC_UNFILLED))
            return
        visible = display if 0 < display < rem else rem
        self._link(_Order(order_id, side, price, rem, visible, display, owner, stp))
        out.append(Event(EV_RESTED, order_id, 0, price, rem, rem, 0, R_NONE))

    def _cancel(self, order_id: int, out: list[Event]) -> None:
        o = self._orders.get(order_id)
        if o is None:
            out.append(Event(EV_REJECTED, order_id, 0, 0, 0, 0, 0, R_UNKNOWN_ID))
            return
        out.append(Event(EV_CANCELED, order_id, 0, o.price, o.leaves, 0, 0, R_USER))
        self._unlink(o)
        del self._orders[order_id]

    def _replace(self, order_id: int, price: int, qty: int, out: list[Event]) -> None:
        o = self._orders.get(order_id)
        reason = R_NONE
        if o is None:
            reason = R_UNKNOWN_ID
        elif qty <= 0 or qty > self.max_qty or _too_many_slices(qty, o.display):
            reason = R_BAD_QTY
        elif not self.min_price <= price <= self.max_price:
            reason = R_PRICE_OUT_OF_BAND
        if o is None or reason:
            out.append(Event(EV_REJECTED, order_id, 0, 0, 0, 0, 0, reason))
            return
        out.append(Event(EV_REPLACED, order_id, 0, price, qty, qty, 0, R_NONE))
        if price == o.price and qty <= o.leaves:
            o.leaves = qty
            o.visible = min(o.visible, qty)
            return
        self._unlink(o)
        rem, stopped = self._match(order_id, o.side, price, price, qty, o.owner, o.stp, out)
        if stopped or rem == 0:
            del self._orders[order_id]
            return
        o.price = price
        o.leaves = rem
        o.visible = o.display if 0 < o.display < rem else rem
        self._link(o)

    def _link(self, o: _Order) -> None:
        levels = self._levels[o.side]
        q = levels.get(o.price)
        if q is None:
            q = levels[o.price] = {}
            insort(self._prices[o.side], o.price)
        q[o.order_id] = o
        self._orders[o.order_id] = o

    def _unlink(self, o: _Order) -> None:
        """Take ``o`` out of its level; it stays indexed by id."""
        levels = self._levels[o.side]
        q = levels[o.price]
        del q[o.order_id]
        if not q:
            del levels[o.price]
            prices = self._prices[o.side]
            del prices[bisect_left(prices, o.price)]

    def _crossing_levels(self, side: int, limit: int) -> list[int]:
        prices = self._prices[side ^ 1]
        if side == BUY:
            return prices[: bisect_left(prices, limit + 1)]
        return prices[bisect_left(prices, limit) :][::-1]

    def _fillable(self, side: int, limit: int, qty: int, owner: int, stp: int) -> bool:
        """FOK test, before any fill: would matching fill all of ``qty``?

        Same-owner makers are skipped under cancel-maker.  Under cancel-taker
        or cancel-both the taker dies on reaching the first one, and by then
        the icebergs ahead of it in that level have only shown their visible
        part (their replenished slices queue behind it).
        """
        stp_on = owner != 0 and stp != STP_NONE
        levels = self._levels[side ^ 1]
        avail = 0
        for px in self._crossing_levels(side, limit):
            level_total = 0
            level_visible = 0
            for m in levels[px].values():
                if stp_on and m.owner == owner:
                    if stp == STP_CANCEL_MAKER:
                        continue
                    return avail + level_visible >= qty
                level_total += m.leaves
                level_visible += m.visible
            avail += level_total
            if avail >= qty:
                return True
        return False

    def _match(
        self,
        taker_id: int,
        side: int,
        limit: int,
        tprice: int,
        qty: int,
        owner: int,
        stp: int,
        out: list[Event],
    ) -> tuple[int, bool]:
        """Fill ``qty`` against the opposite side; returns (remaining, stp_killed)."""
        opp = side ^ 1
        prices = self._prices[opp]
        levels = self._levels[opp]
        orders = self._orders
        stp_on = owner != 0 and stp != STP_NONE
        rem = qty
        while rem > 0 and prices:
            px = prices[0] if side == BUY else prices[-1]
            if (px > limit) if side == BUY else (px < limit):
                break
            q = levels[px]
            while rem > 0:
                m = next(iter(q.values()))
                if stp_on and m.owner == owner:
                    if stp != STP_CANCEL_TAKER:
                        out.append(Event(EV_CANCELED, m.order_id, 0, px, m.leaves, 0, 0, R_SELF_MATCH))
                        del orders[m.order_id]
                        del q[m.order_id]
                    if stp != STP_CANCEL_MAKER:
                        out.append(Event(EV_CANCELED, taker_id, 0, tprice, rem, 0, 0, R_SELF_MATCH))
                        if not q:
                            self._drop_level(opp, px)
                        return 0, True
                else:
                    t = rem if rem < m.visible else m.visible
                    rem -= t
                    m.visible -= t
                    m.leaves -= t
                    out.append(Event(EV_FILL, taker_id, m.order_id, px, t, rem, m.leaves, R_NONE))
                    if m.leaves == 0:
                        del orders[m.order_id]
                        del q[m.order_id]
                    elif m.visible == 0:
                        m.visible = m.display if m.display < m.leaves else m.leaves
                        del q[m.order_id]
                        q[m.order_id] = m
                if not q:
                    self._drop_level(opp, px)
                    break
        return rem, False

    def _drop_level(self, side: int, px: int) -> None:
        del self._levels[side][px]
        prices = self._prices[side]
        if side == BUY:
            prices.pop()  # only the best (highest) bid level is ever emptied by matching
        else:
            del prices[0]
