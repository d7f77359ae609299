"""The internal crossing venue ("INTERNAL"): clients' orders resting in the broker's own book, crossed by
other clients' orders without going to an exchange.

It is an `oms.ports.VenueConnector` like any FIX venue: the engine sends it child orders and gets
ExecutionReports back through `submit` (New, Trade, Canceled, Rejected, OrderStatus, with unique
ExecIDs), so nothing in the engine treats it specially. Behind it is one `native.Book` per symbol
(integer ticks; resting prices are rounded towards the passive side so a limit is never loosened).

Crossing rules (docs/routing.md):

* A match happens only while the lit NBBO (`reference(symbol) -> (bid, ask)`, from the router's
  consolidated book) is two-sided, and only at a price P with bid <= P <= ask: no protected quote is
  ever traded through. An incoming order can only take as far as the far touch (a buy up to
  min(limit, ask)) and not at all if its limit does not reach the near touch (a buy below the bid).
* Each match executes at the price closest to the NBBO mid that respects both orders' limits: the
  mid when both are marketable. Both sides get the same price.
* Self-match prevention per account (one book owner id per account): an incoming order meeting its own
  account's resting order cancels the resting one and goes on (the design's "cancel resting").
* An order with a resting time in force (DAY/GTC/GTD) rests with what is left, at its limit, or one
  tick short of the internal contra side if its limit would cross orders it may not trade with (they
  are outside the NBBO), so the book is never crossed. IOC/FOK remainders are canceled; market orders
  never rest.

In-process and volatile: after a restart it holds nothing, and status requests for old children are
answered "unknown", which the engine's reconciliation turns into done children. One owning thread:
the engine's (it calls `send_*`), which is also where `on_book` is called from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import native
from oms import commands as c
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.reports import VenueCancel, VenueNewOrder, VenueReplace, VenueStatusRequest

ZERO = Decimal(0)
TWO = Decimal(2)
_AVG = Decimal("0.000001")
_RESTING_TIFS = (TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTD)

Reference = Callable[[str], tuple[Decimal | None, Decimal | None]]
Interest = tuple[Decimal, Decimal, str]  # (limit, leaves, account)
BookListener = Callable[[str, list[Interest], list[Interest]], None]


def cross_price(buy_limit: Decimal | None, sell_limit: Decimal | None, bid: Decimal, ask: Decimal) -> Decimal | None:
    """The venue's execution price rule; sor.crossing.cross_price is the router's copy (venues may not
    import sor) and a test holds the two to the same answers."""
    if bid > ask:
        return None
    lo = bid if sell_limit is None else max(bid, sell_limit)
    hi = ask if buy_limit is None else min(ask, buy_limit)
    if lo > hi:
        return None
    return min(max((bid + ask) / TWO, lo), hi)


@dataclass(slots=True)
class _Order:
    vid: int
    child_id: str
    symbol: str
    side: Side
    account: str
    owner: int
    qty: Decimal
    limit: Decimal | None
    tif: TimeInForce
    cum: Decimal = ZERO
    notional: Decimal = ZERO
    status: OrdStatus = OrdStatus.NEW
    resting: bool = False

    @property
    def buy(self) -> bool:
        return self.side is Side.BUY

    @property
    def leaves(self) -> Decimal:
        return ZERO if self.status in (OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.FILLED) else self.qty - self.cum

    @property
    def avg_px(self) -> Decimal:
        return (self.notional / self.cum).quantize(_AVG) if self.cum else ZERO


class InternalVenue:
    def __init__(
        self,
        submit: Callable[[Any], None],
        *,
        reference: Reference,
        name: str = "INTERNAL",
        on_book: BookListener | None = None,
        tick: Decimal = Decimal("0.01"),
        max_orders: int = 100_000,
        book_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.name = name
        self.submit = submit
        self.reference = reference
        self.on_book = on_book
        self.tick = tick
        self.max_orders = max_orders
        self.book_factory = book_factory or native.Book
        self.books: dict[str, Any] = {}
        self.bands: dict[str, tuple[int, int]] = {}
        self.orders: dict[int, _Order] = {}
        self.by_child: dict[str, int] = {}
        self.resting: dict[str, set[int]] = {}
        self.owners: dict[str, int] = {}
        self._next_vid = 1
        self._exec_seq = 0
        # ExecIDs must stay unique across restarts: the engine de-duplicates fills on (venue, ExecID).
        self._run_id = f"{time.time_ns():x}"

    def start(self) -> None:
        """Announce the venue up (an in-process venue has no logon to do it)."""
        self.submit(c.VenueSessionUp(self.name))

    # --- prices ----------------------------------------------------------------------------------
    def _ticks(self, price: Decimal, rounding: str) -> int:
        return int((price / self.tick).to_integral_value(rounding))

    def _book(self, symbol: str, around: Decimal) -> Any:
        book = self.books.get(symbol)
        if book is None:
            ref = max(self._ticks(around, ROUND_FLOOR), 4)
            self.bands[symbol] = (max(1, ref // 4), ref * 4)
            book = self.books[symbol] = self.book_factory(
                min_price=self.bands[symbol][0], max_price=self.bands[symbol][1], max_orders=self.max_orders,
            )
        return book

    def _owner(self, account: str) -> int:
        # Owner 0 disables self-match prevention in the book: an order without an account cannot be
        # matched to an owner, so it gets none.
        if not account:
            return 0
        return self.owners.setdefault(account, len(self.owners) + 1)

    # --- the port --------------------------------------------------------------------------------
    def send_new(self, msg: VenueNewOrder) -> None:
        error = self._validate(msg)
        if error:
            self._reject(msg.child_id, error)
            return
        bid, ask = self.reference(msg.symbol)
        around = msg.price or ask or bid
        if around is None and msg.symbol not in self.books:
            self._reject(msg.child_id, "no reference price for a market order")
            return
        book = self._book(msg.symbol, around or ZERO)
        vid = self._next_vid
        self._next_vid += 1
        o = _Order(vid, msg.child_id, msg.symbol, msg.side, msg.account, self._owner(msg.account), msg.qty,
                   msg.price if msg.ord_type is OrdType.LIMIT else None, msg.time_in_force)
        self.orders[vid] = o
        self.by_child[msg.child_id] = vid
        self._report(o, ExecType.NEW)
        self._take(book, o, bid, ask)
        if o.leaves > 0 and o.status is not OrdStatus.CANCELED:
            if o.limit is not None and o.tif in _RESTING_TIFS:
                self._rest(book, o)
            else:
                o.status = OrdStatus.CANCELED
                self._report(o, ExecType.CANCELED, text="no internal cross for the remainder")
        self._publish(o.symbol)

    def send_cancel(self, msg: VenueCancel) -> None:
        vid = self.by_child.get(msg.child_id)
        o = self.orders.get(vid) if vid is not None else None
        if o is None or not o.resting or o.leaves <= 0:
            text = "unknown order" if o is None else "order not open: too late to cancel"
            self.submit(c.VenueCancelReject(self.name, msg.cancel_id, msg.child_id, None if o is None else o.status,
                                            text))
            return
        self.books[o.symbol].cancel(o.vid)
        self._done(o)
        o.status = OrdStatus.CANCELED
        self._report(o, ExecType.CANCELED, cl_ord_id=msg.cancel_id, orig=o.child_id, text="canceled")
        self._publish(o.symbol)

    def send_replace(self, msg: VenueReplace) -> None:
        # The crossing book takes no amends (its profile says so, so the engine cancels and re-routes
        # instead); a request that comes anyway gets a clear refusal, and the order works on unchanged.
        vid = self.by_child.get(msg.orig_cl_ord_id)
        o = self.orders.get(vid) if vid is not None else None
        self.submit(c.VenueCancelReject(self.name, msg.amend_id, msg.orig_cl_ord_id, None if o is None else o.status,
                                        f"{self.name} does not amend orders: cancel and send a new one"))

    def send_status_request(self, msg: VenueStatusRequest) -> None:
        vid = self.by_child.get(msg.child_id)
        o = self.orders.get(vid) if vid is not None else None
        if o is None:
            self.submit(c.VenueReport(self.name, msg.child_id, None, "NONE", "0", ExecType.ORDER_STATUS,
                                      OrdStatus.REJECTED, text="unknown order"))
            return
        self._report(o, ExecType.ORDER_STATUS, exec_id="0")

    # --- views -------------------------------------------------------------------------------------
    def interest(self, symbol: str) -> tuple[list[Interest], list[Interest]]:
        """Resting orders as (limit, leaves, account), each side in the book's priority order."""
        book = self.books.get(symbol)
        bids: list[tuple[int, int, Interest]] = []
        asks: list[tuple[int, int, Interest]] = []
        for vid in self.resting.get(symbol, ()):
            o = self.orders[vid]
            info = book.get(vid) if book is not None else None
            if info is None or o.limit is None:
                continue
            entry = (o.limit, o.leaves, o.account)
            if o.buy:
                bids.append((-info.price, vid, entry))
            else:
                asks.append((info.price, vid, entry))
        return [e for *_, e in sorted(bids)], [e for *_, e in sorted(asks)]

    # --- internals ---------------------------------------------------------------------------------
    def _validate(self, msg: VenueNewOrder) -> str:
        if msg.child_id in self.by_child:
            return "duplicate ClOrdID"
        if msg.qty <= 0 or msg.qty != msg.qty.to_integral_value():
            return f"bad quantity {msg.qty}"
        if msg.ord_type is OrdType.LIMIT:
            if msg.price is None or msg.price <= 0:
                return "limit order without a price"
        elif msg.ord_type is not OrdType.MARKET:
            return f"order type {msg.ord_type.name} not supported"
        if msg.time_in_force not in _RESTING_TIFS + (TimeInForce.IOC, TimeInForce.FOK):
            return f"time in force {msg.time_in_force.name} not supported"
        if msg.side not in (Side.BUY, Side.SELL, Side.SELL_SHORT):
            return "bad side"
        return ""

    def _take(self, book: Any, o: _Order, bid: Decimal | None, ask: Decimal | None) -> None:
        """Match `o` as the incoming order against the resting ones, inside the NBBO only."""
        if bid is None or ask is None or bid > ask:
            return  # nothing to stay inside of: no cross
        if o.buy:
            if o.limit is not None and o.limit < bid:
                return
            bound = self._ticks(ask if o.limit is None else min(o.limit, ask), ROUND_FLOOR)
        else:
            if o.limit is not None and o.limit > ask:
                return
            bound = self._ticks(bid if o.limit is None else max(o.limit, bid), ROUND_CEILING)
        lo, hi = self.bands[o.symbol]
        if (bound < lo) if o.buy else (bound > hi):
            return  # every resting order is priced beyond what this one may reach
        bound = min(bound, hi) if o.buy else max(bound, lo)
        contra = book.best_ask() if o.buy else book.best_bid()
        if contra is None or (contra[0] > bound if o.buy else contra[0] < bound):
            return  # nothing in reach: skip the book call (and its IOC cancel event)
        tif = native.FOK if o.tif is TimeInForce.FOK else native.IOC
        events = book.add(o.vid, native.BUY if o.buy else native.SELL, bound, int(o.qty), tif, o.owner, 0,
                          native.STP_CANCEL_MAKER)
        for e in events:
            if e.kind == native.EV_FILL:
                maker = self.orders[e.maker_id]
                buy_limit, sell_limit = (o.limit, maker.limit) if o.buy else (maker.limit, o.limit)
                px = cross_price(buy_limit, sell_limit, bid, ask)
                # Cannot be None: the maker rests at or beyond its limit and was reached within `bound`.
                assert px is not None, (o, maker, bid, ask)
                qty = Decimal(e.qty)
                for side in (o, maker):
                    side.cum += qty
                    side.notional += qty * px
                    side.status = OrdStatus.FILLED if side.cum >= side.qty else OrdStatus.PARTIALLY_FILLED
                    self._report(side, ExecType.TRADE, last_qty=qty, last_px=px)
                if e.maker_leaves == 0:
                    self._done(maker)
            elif e.kind == native.EV_CANCELED and e.order_id != o.vid:
                maker = self.orders[e.order_id]  # self-match prevention: the resting order goes
                self._done(maker)
                maker.status = OrdStatus.CANCELED
                self._report(maker, ExecType.CANCELED, text="self-match prevented")
            elif e.kind == native.EV_CANCELED and e.reason == native.R_FOK_UNFILLABLE:
                o.status = OrdStatus.CANCELED
                self._report(o, ExecType.CANCELED, text="FOK not filled")
            elif e.kind == native.EV_REJECTED:
                o.status = OrdStatus.CANCELED
                self._report(o, ExecType.CANCELED, text=f"internal book refused the order (reason {e.reason})")

    def _rest(self, book: Any, o: _Order) -> None:
        assert o.limit is not None
        lo, hi = self.bands[o.symbol]
        if o.buy:
            price = self._ticks(o.limit, ROUND_FLOOR)
            contra = book.best_ask()
            if contra is not None and contra[0] <= price:
                price = contra[0] - 1
        else:
            price = self._ticks(o.limit, ROUND_CEILING)
            contra = book.best_bid()
            if contra is not None and contra[0] >= price:
                price = contra[0] + 1
        price = min(price, hi) if o.buy else max(price, lo)
        if not lo <= price <= hi:
            o.status = OrdStatus.CANCELED
            self._report(o, ExecType.CANCELED, text="price outside the internal book's band")
            return
        events = book.add(o.vid, native.BUY if o.buy else native.SELL, price, int(o.leaves), native.GTC, o.owner, 0,
                          native.STP_CANCEL_MAKER)
        if any(e.kind == native.EV_RESTED for e in events):
            o.resting = True
            self.resting.setdefault(o.symbol, set()).add(o.vid)
        else:
            o.status = OrdStatus.CANCELED
            self._report(o, ExecType.CANCELED, text="internal book full")

    def _done(self, o: _Order) -> None:
        o.resting = False
        self.resting.get(o.symbol, set()).discard(o.vid)

    def _publish(self, symbol: str) -> None:
        if self.on_book is not None:
            bids, asks = self.interest(symbol)
            self.on_book(symbol, bids, asks)

    def _reject(self, child_id: str, text: str) -> None:
        self.submit(c.VenueReport(self.name, child_id, None, "NONE", self._exec_id(), ExecType.REJECTED,
                                  OrdStatus.REJECTED, text=text))

    def _exec_id(self) -> str:
        self._exec_seq += 1
        return f"{self.name}-{self._run_id}-{self._exec_seq}"

    def _report(self, o: _Order, exec_type: ExecType, *, last_qty: Decimal = ZERO, last_px: Decimal = ZERO,
                cl_ord_id: str | None = None, orig: str | None = None, text: str = "", exec_id: str | None = None) -> None:
        self.submit(c.VenueReport(
            self.name, cl_ord_id or o.child_id, orig, f"{self.name}-{o.vid}", exec_id or self._exec_id(), exec_type,
            o.status, last_qty, last_px, o.cum, o.leaves, o.avg_px, text=text,
        ))
