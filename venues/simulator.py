"""The venue simulator: a FIX acceptor with a native price-time book per symbol.

Seeded with resting "house" liquidity around a reference price, it answers NewOrderSingle,
OrderCancelRequest and OrderCancelReplaceRequest with the ExecutionReports a real venue sends (New, Trade,
Canceled, Replaced, Rejected) and OrderCancelReject when a cancel or replace comes too late. A replace
amends the resting order in the book with the book's priority rules (native.Book.replace): a quantity
reduction at the same price keeps its place in the queue, a price change or a quantity increase sends
it to the back of its (new) price level, matching first if the new price crosses.

The simulator runs on QuickFIX's ThreadedSocketAcceptor, not the SocketAcceptor the design prefers:
1.16's SocketAcceptor.stop() closes its SocketServer on the caller's thread while the acceptor thread
deletes it, which crashed the process at shutdown every time here (SocketServer::close iterating a
freed map). A thread per session means the books are guarded by one lock, so one thread at a time
owns them (the native book's rule).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import native
from fix_engine import codec, settings
from fix_engine.application import GuardedApplication, destroy
from fix_engine.codec import SOH
from fix_engine.quickfix_import import fix
from oms import commands as c
from oms.enums import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from oms.reports import CancelReject, ExecutionReport

log = logging.getLogger(__name__)

HOUSE_OWNER = 1
CLIENT_OWNER = 2
OTHER_OWNER = 3  # injected liquidity from "another participant": trades with house and clients alike
HOUSE_ID_BASE = 1 << 48
DEFAULT_SYMBOLS: dict[str, Decimal] = {
    "AAPL": Decimal("190.00"),
    "MSFT": Decimal("410.00"),
    "IBM": Decimal("150.00"),
    "TSLA": Decimal("250.00"),
}


# Statuses after which a venue order no longer works (nothing is left to fill).
ENDED = frozenset({OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.FILLED, OrdStatus.DONE_FOR_DAY})
# How many application messages in and out the simulator keeps (see VenueSimulator.exchanged).
MESSAGES_KEPT = 10_000


@dataclass(slots=True)
class SimOrder:
    vid: int
    session: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    qty: int
    price: Decimal | None
    cum: int = 0
    notional: Decimal = Decimal(0)
    status: OrdStatus = OrdStatus.NEW

    @property
    def leaves(self) -> int:
        return 0 if self.status in ENDED else self.qty - self.cum

    @property
    def avg_px(self) -> Decimal:
        return (self.notional / self.cum).quantize(Decimal("0.0001")) if self.cum else Decimal(0)


class VenueSimulator(GuardedApplication):
    def __init__(
        self,
        name: str,
        symbols: dict[str, Decimal] | None = None,
        seed: int = 1,
        tick: Decimal = Decimal("0.01"),
        levels: int = 5,
        book_factory: Any = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.tick = tick
        self.levels = levels
        self.symbols = dict(symbols or DEFAULT_SYMBOLS)
        self.rng = random.Random(seed)
        factory = book_factory or native.Book
        self.books: dict[str, Any] = {}
        for symbol, ref in self.symbols.items():
            ref_ticks = self.ticks(ref)
            self.books[symbol] = factory(min_price=max(1, ref_ticks // 2), max_price=ref_ticks * 2, max_orders=100_000)
        self.orders: dict[int, SimOrder] = {}
        self._current_symbol = ""
        self.by_cl_ord_id: dict[tuple[str, str], int] = {}
        self.cancel_ids: dict[int, str] = {}
        self.last_fill: dict[int, tuple[str, int, Decimal]] = {}
        self._next_vid = 1
        self._next_house = HOUSE_ID_BASE
        self._exec_seq = 0
        # Re-entrant so a test can pause the venue (hold the lock) and still inject events.
        self._lock = threading.RLock()
        self.md_depth = 5
        self.latency = 0.0
        self.md_subs: dict[str, dict[str, str]] = {}
        self.halted: dict[str, str] = {}  # symbol -> reason: new orders refused, subscribers told (35=f)
        self.published: dict[tuple[str, str], tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self._trades: list[tuple[str, Decimal, Decimal]] = []
        self._activity_stop = threading.Event()
        # Exec ids must stay unique across simulator restarts: the engine de-duplicates on them.
        self._run_id = f"{int(time.time() * 1000):x}"
        # The raw application messages received and sent, newest last: what tests and an operator of the
        # simulator read (`exchanged`) to see exactly what the venue was asked and answered. Raw strings
        # and bounded: recording costs an append, parsing happens only when someone reads.
        self.messages: deque[tuple[str, str]] = deque(maxlen=MESSAGES_KEPT)
        # What the venue sends goes out on a thread of its own, in the order it was made (send_raw): the
        # session's reading thread, which makes the answers, must never wait for a full socket. If it did,
        # a counterpart that sends thousands of requests at once (a mass cancel) while we answer would
        # find us no longer reading: both sockets full, and on loopback the kernel's retransmission
        # backoff stalled such a connection for over a minute.
        self._outgoing: queue.SimpleQueue[tuple[str, str, bool] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        self._sender_closed = False
        for symbol in self.symbols:
            self._seed(symbol, native.BUY)
            self._seed(symbol, native.SELL)

    # --- prices ------------------------------------------------------------------------------
    def ticks(self, price: Decimal) -> int:
        return int((price / self.tick).to_integral_value())

    def price(self, ticks: int) -> Decimal:
        return (Decimal(ticks) * self.tick).quantize(self.tick)

    def _seed(self, symbol: str, side: int) -> None:
        """House liquidity: `levels` price levels either side of the reference price."""
        book = self.books[symbol]
        ref = self.ticks(self.symbols[symbol])
        for k in range(1, self.levels + 1):
            px = ref - k if side == native.BUY else ref + k
            qty = 100 * self.rng.randint(1, 5)
            self._next_house += 1
            book.add(self._next_house, side, px, qty, native.GTC, HOUSE_OWNER)

    # --- FIX ---------------------------------------------------------------------------------
    def on_from_app(self, raw: str, key: str) -> None:
        if self.latency:
            time.sleep(self.latency)  # the venue's own answer time (config latency_ms)
        with self._lock:
            self._dispatch(raw, key)

    def _dispatch(self, raw: str, key: str) -> None:
        self.messages.append(("in", raw))
        if f"{SOH}35={codec.MD_REQUEST}{SOH}" in raw:
            self._md_request(key, raw)
            return
        try:
            command = codec.decode_client(raw, key)
        except codec.UnsupportedMessage:
            raise fix.UnsupportedMessageType() from None
        handler = self._requests.get(type(command))
        if handler is not None:
            handler(self, command)
        self._publish_all()

    def send_raw(self, key: str, raw: str, groups: bool = False) -> bool:
        """Queue a message for the sender thread (see __init__); True: queued, not yet sent. Once the
        simulator is closed, sends synchronously (and QuickFIX's registry says whether it still can)."""
        self.messages.append(("out", raw))
        with self._sender_lock:
            if not self._sender_closed:
                if self._sender is None:
                    self._sender = threading.Thread(target=self._send_loop, name=f"{self.name}-sender", daemon=True)
                    self._sender.start()
                self._outgoing.put((key, raw, groups))
                return True
        return super().send_raw(key, raw, groups)

    def _send_loop(self) -> None:
        while (item := self._outgoing.get()) is not None:
            try:
                super().send_raw(*item)
            except Exception:  # a message QuickFIX refuses must not stop every later one
                log.exception("venue %s: sending %r failed", self.name, item[1][:80])

    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued, stop the sender thread, then GuardedApplication.close."""
        with self._sender_lock:
            sender, self._sender = self._sender, None
            self._sender_closed = True  # later sends go straight to GuardedApplication.send_raw, which refuses them
        if sender is not None:
            self._outgoing.put(None)
            sender.join(timeout)
        return super().close(timeout)

    def exchanged(self, *cl_ord_ids: str) -> list[tuple[str, dict[int, str]]]:
        """The application messages about these ClOrdIDs (as ClOrdID or OrigClOrdID), oldest first: each
        ("in" or "out", its fields)."""
        with self._lock:
            kept = list(self.messages)
        ids = set(cl_ord_ids)
        out = []
        for direction, raw in kept:
            fields = codec.parse(raw)
            if fields.get(codec.CL_ORD_ID) in ids or fields.get(codec.ORIG_CL_ORD_ID) in ids:
                out.append((direction, fields))
        return out

    def _exec_id(self) -> str:
        self._exec_seq += 1
        return f"{self.name}-{self._run_id}-{self._exec_seq}"

    def _send(self, o: SimOrder, exec_type: ExecType, *, last_qty: int = 0, last_px: Decimal | None = None,
              cl_ord_id: str | None = None, orig: str | None = None, text: str = "", exec_ref_id: str = "",
              restatement_reason: int | None = None) -> str:
        exec_id = "0" if exec_type is ExecType.ORDER_STATUS else self._exec_id()
        report = ExecutionReport(
            session=o.session, order_id=f"{self.name}-{o.vid}", cl_ord_id=cl_ord_id or o.cl_ord_id,
            orig_cl_ord_id=orig, exec_id=exec_id, exec_type=exec_type, ord_status=o.status,
            account="", symbol=o.symbol, side=o.side.value, ord_type=o.ord_type, time_in_force=None,
            order_qty=Decimal(o.qty), price=o.price, last_qty=Decimal(last_qty), last_px=last_px or Decimal(0),
            leaves_qty=Decimal(o.leaves), cum_qty=Decimal(o.cum), avg_px=o.avg_px, text=text,
            last_mkt=self.name, exec_ref_id=exec_ref_id, exec_restatement_reason=restatement_reason,
        )
        self.send_raw(o.session, codec.encode_report(report, self.begin_strings.get(o.session, codec.FIX44)))
        return exec_id

    def _reject(self, session: str, cl_ord_id: str, symbol: str, side: str, text: str) -> None:
        report = ExecutionReport(
            session=session, order_id="NONE", cl_ord_id=cl_ord_id, orig_cl_ord_id=None, exec_id=self._exec_id(),
            exec_type=ExecType.REJECTED, ord_status=OrdStatus.REJECTED, account="", symbol=symbol, side=side,
            ord_type=None, time_in_force=None, order_qty=Decimal(0), price=None, last_qty=Decimal(0),
            last_px=Decimal(0), leaves_qty=Decimal(0), cum_qty=Decimal(0), avg_px=Decimal(0), text=text,
        )
        self.send_raw(session, codec.encode_report(report, self.begin_strings.get(session, codec.FIX44)))

    def _new_order(self, cmd: c.NewOrder) -> None:
        book = self.books.get(cmd.symbol)
        if book is None:
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, f"unknown symbol {cmd.symbol}")
        if cmd.symbol in self.halted:
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value,
                                f"trading halted in {cmd.symbol}")
        if (cmd.session, cmd.cl_ord_id) in self.by_cl_ord_id:
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, "duplicate ClOrdID")
        qty = cmd.order_qty
        if qty <= 0 or qty != qty.to_integral_value():
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, f"bad quantity {qty}")
        if cmd.ord_type is OrdType.LIMIT and (cmd.price is None or cmd.price <= 0):
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, "limit order without price")
        if cmd.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
            return self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, "order type not supported")
        vid = self._next_vid
        self._next_vid += 1
        o = SimOrder(vid, cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side, cmd.ord_type, int(qty), cmd.price)
        self.orders[vid] = o
        self.by_cl_ord_id[(cmd.session, cmd.cl_ord_id)] = vid
        self._send(o, ExecType.NEW)
        side = native.BUY if cmd.side is Side.BUY else native.SELL
        if cmd.ord_type is OrdType.MARKET:
            events = book.market(vid, side, int(qty), CLIENT_OWNER)
        else:
            assert cmd.price is not None
            tif = {TimeInForce.IOC: native.IOC, TimeInForce.FOK: native.FOK}.get(cmd.time_in_force, native.GTC)
            display = int(cmd.max_floor) if cmd.max_floor else 0
            events = book.add(vid, side, self.ticks(cmd.price), int(qty), tif, CLIENT_OWNER, display)
        self._current_symbol = cmd.symbol
        self._apply(events)
        self._replenish(cmd.symbol)

    def _cancel(self, cmd: c.CancelOrder) -> None:
        vid = self.by_cl_ord_id.get((cmd.session, cmd.orig_cl_ord_id))
        o = self.orders.get(vid) if vid is not None else None
        if o is None or o.leaves == 0:
            reason = CxlRejReason.TOO_LATE_TO_CANCEL if o is not None else CxlRejReason.UNKNOWN_ORDER
            return self._refuse(cmd, o, reason, "order not open" if o is not None else "unknown order")
        self.cancel_ids[o.vid] = cmd.cl_ord_id
        self._apply(self.books[o.symbol].cancel(o.vid))

    def _refuse(self, cmd: c.CancelOrder | c.ReplaceOrder, o: SimOrder | None, reason: CxlRejReason,
                text: str) -> None:
        response_to = CxlRejResponseTo.CANCEL if isinstance(cmd, c.CancelOrder) else CxlRejResponseTo.REPLACE
        reject = CancelReject(cmd.session, f"{self.name}-{o.vid}" if o is not None else "NONE", cmd.cl_ord_id,
                              cmd.orig_cl_ord_id, o.status if o is not None else OrdStatus.REJECTED, response_to,
                              reason, text)
        self.send_raw(cmd.session, codec.encode_cancel_reject(reject, self.begin_strings.get(cmd.session, codec.FIX44)))

    def _replace(self, cmd: c.ReplaceOrder) -> None:
        vid = self.by_cl_ord_id.get((cmd.session, cmd.orig_cl_ord_id))
        o = self.orders.get(vid) if vid is not None else None
        if o is None:
            return self._refuse(cmd, None, CxlRejReason.UNKNOWN_ORDER, "unknown order")
        qty = cmd.order_qty
        refusal = (
            "order not open" if o.leaves == 0
            else "duplicate ClOrdID" if (cmd.session, cmd.cl_ord_id) in self.by_cl_ord_id
            else f"trading halted in {o.symbol}: only cancels accepted" if o.symbol in self.halted
            else "symbol, side and order type cannot change" if (cmd.symbol, cmd.side, cmd.ord_type) != (
                o.symbol, o.side, o.ord_type)
            else f"bad quantity {qty}" if qty <= 0 or qty != qty.to_integral_value()
            else "limit order without price" if o.ord_type is OrdType.LIMIT and (cmd.price is None or cmd.price <= 0)
            else ""
        )
        if refusal:
            reason = CxlRejReason.TOO_LATE_TO_CANCEL if o.leaves == 0 else CxlRejReason.OTHER
            return self._refuse(cmd, o, reason, refusal)
        book, new_qty = self.books[o.symbol], int(qty)
        if new_qty <= o.cum:
            # Down to what already traded: the rest is canceled and the order ends filled at CumQty
            # (App D C.3.b/c), its OrderQty never below CumQty.
            book.cancel(o.vid)
            events: list[Any] = []
            o.qty, o.status = o.cum, OrdStatus.FILLED
        else:
            assert cmd.price is not None
            events = list(book.replace(o.vid, self.ticks(cmd.price), new_qty - o.cum))
            if events[0].kind == native.EV_REJECTED:
                return self._refuse(cmd, o, CxlRejReason.OTHER, f"rejected by book (reason {events[0].reason})")
            o.qty = new_qty
        orig, o.cl_ord_id, o.price = o.cl_ord_id, cmd.cl_ord_id, cmd.price
        self.by_cl_ord_id[(cmd.session, cmd.cl_ord_id)] = o.vid
        self._send(o, ExecType.REPLACED, orig=orig)
        self._current_symbol = o.symbol
        self._apply(events[1:])  # a new price that crosses trades at once, as the new order would
        self._replenish(o.symbol)

    def _status(self, cmd: c.StatusRequest) -> None:
        vid = self.by_cl_ord_id.get((cmd.session, cmd.cl_ord_id))
        o = self.orders.get(vid) if vid is not None else None
        if o is None:
            report = ExecutionReport(
                session=cmd.session, order_id="NONE", cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=None,
                exec_id="0", exec_type=ExecType.ORDER_STATUS, ord_status=OrdStatus.REJECTED, account="",
                symbol=cmd.symbol, side=cmd.side, ord_type=None, time_in_force=None, order_qty=Decimal(0), price=None,
                last_qty=Decimal(0), last_px=Decimal(0), leaves_qty=Decimal(0), cum_qty=Decimal(0),
                avg_px=Decimal(0), text="unknown order", ord_rej_reason=OrdRejReason.UNKNOWN_ORDER,
            )
            self.send_raw(cmd.session, codec.encode_report(report, self.begin_strings.get(cmd.session, codec.FIX44)))
            return
        self._send(o, ExecType.ORDER_STATUS)

    _requests: dict[type, Any] = {
        c.NewOrder: _new_order,
        c.InvalidOrder: lambda self, cmd: self._reject(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side, cmd.text),
        c.CancelOrder: _cancel,
        c.ReplaceOrder: _replace,
        c.StatusRequest: _status,
    }

    # --- venue-side events a test or an operator of the simulator can cause -------------------
    def bust_last_fill(self, session: str, cl_ord_id: str, correct_to: tuple[int, Decimal] | None = None) -> None:
        """Cancel (or correct to (qty, px)) the last execution of an order, as venues do after errors."""
        with self._lock:
            o = self.orders[self.by_cl_ord_id[(session, cl_ord_id)]]
            exec_id, qty, px = self.last_fill[o.vid]
            if correct_to is None:
                o.cum -= qty
                o.notional -= qty * px
                if o.status not in (OrdStatus.CANCELED, OrdStatus.DONE_FOR_DAY):  # reopens only a working or filled one
                    o.status = OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW
                self._send(o, ExecType.TRADE_CANCEL, exec_ref_id=exec_id)  # executes nothing (App D J.1.b)
            else:
                new_qty, new_px = correct_to
                o.cum += new_qty - qty
                o.notional += new_qty * new_px - qty * px
                self._send(o, ExecType.TRADE_CORRECT, last_qty=new_qty, last_px=new_px, exec_ref_id=exec_id)

    # --- market data: W on subscription, then X with what changed -------------------------------
    def _levels(self, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        book = self.books[symbol]
        bids = [(self.price(px), Decimal(qty)) for px, qty, _ in book.depth(native.BUY, self.md_depth)]
        asks = [(self.price(px), Decimal(qty)) for px, qty, _ in book.depth(native.SELL, self.md_depth)]
        return bids, asks

    def _md_request(self, session: str, raw: str) -> None:
        req_id, symbols, depth = codec.decode_md_request(raw)
        begin = self.begin_strings.get(session, codec.FIX44)
        for symbol in symbols:
            if symbol not in self.books:
                continue
            self.md_subs.setdefault(symbol, {})[session] = req_id
            bids, asks = self._levels(symbol)
            self.published[(session, symbol)] = (dict(bids), dict(asks))
            self.send_raw(session, codec.encode_md_snapshot(req_id, symbol, bids, asks, begin), groups=True)
            if symbol in self.halted:
                self.send_raw(session, codec.encode_security_status(req_id, symbol, True, begin, self.halted[symbol]))
        _ = depth  # we publish our own fixed depth

    def halt(self, symbol: str, halted: bool = True, reason: str = "") -> None:
        """Halt (or resume) trading in `symbol`: new orders in it are rejected, resting ones stay, and
        every market data subscriber gets a SecurityStatus (35=f, 326=2 halted / 17 ready to trade)."""
        with self._lock:
            if halted:
                self.halted[symbol] = reason
            else:
                self.halted.pop(symbol, None)
            for session, req_id in self.md_subs.get(symbol, {}).items():
                self.send_raw(session, codec.encode_security_status(
                    req_id, symbol, halted, self.begin_strings.get(session, codec.FIX44), reason))

    def _publish_all(self) -> None:
        for symbol in list(self.md_subs):
            self._publish(symbol)

    def _publish(self, symbol: str) -> None:
        subs = self.md_subs.get(symbol)
        trades = [t for t in self._trades if t[0] == symbol]
        self._trades = [t for t in self._trades if t[0] != symbol]
        if not subs:
            return
        bids, asks = self._levels(symbol)
        now = (dict(bids), dict(asks))
        for session, req_id in subs.items():
            before = self.published.get((session, symbol), ({}, {}))
            updates: list[tuple[str, str, str, Decimal, Decimal]] = []
            for kind, old, new in ((codec.MD_BID, before[0], now[0]), (codec.MD_OFFER, before[1], now[1])):
                for px in old.keys() - new.keys():
                    updates.append(("2", kind, symbol, px, Decimal(0)))
                for px, qty in new.items():
                    if px not in old:
                        updates.append(("0", kind, symbol, px, qty))
                    elif old[px] != qty:
                        updates.append(("1", kind, symbol, px, qty))
            updates += [("0", codec.MD_TRADE, symbol, px, qty) for _, px, qty in trades]
            if updates:
                self.published[(session, symbol)] = now
                self.send_raw(session, codec.encode_md_incremental(req_id, updates,
                                                                   self.begin_strings.get(session, codec.FIX44)),
                              groups=True)

    def start_activity(self, interval: float = 0.05, seed: int = 7) -> None:
        """Background participants: a seeded random walk of the mid, orders arriving and cancelling."""
        rng = random.Random(seed)
        self._activity_stop.clear()

        def run() -> None:
            mids = {sym: self.ticks(ref) for sym, ref in self.symbols.items()}
            live: dict[str, list[int]] = {sym: [] for sym in self.symbols}
            while not self._activity_stop.wait(interval):
                symbol = rng.choice(sorted(self.symbols))
                with self._lock:
                    self._current_symbol = symbol
                    mids[symbol] += rng.choice((-1, 0, 0, 1))
                    if live[symbol] and rng.random() < 0.4:
                        oid = live[symbol].pop(rng.randrange(len(live[symbol])))
                        self._apply(self.books[symbol].cancel(oid))
                    else:
                        side = rng.choice((native.BUY, native.SELL))
                        offset = rng.randint(1, self.levels)
                        px = mids[symbol] - offset if side == native.BUY else mids[symbol] + offset
                        self._next_house += 1
                        live[symbol].append(self._next_house)
                        self._apply(self.books[symbol].add(self._next_house, side, px, 100 * rng.randint(1, 5),
                                                           native.GTC, HOUSE_OWNER))
                    self._publish(symbol)

        self._activity = threading.Thread(target=run, name=f"{self.name}-activity", daemon=True)
        self._activity.start()

    def stop_activity(self) -> None:
        self._activity_stop.set()

    def paused(self) -> threading.RLock:
        """`with sim.paused():` holds incoming messages until the block ends (to make races happen)."""
        return self._lock

    def house_order(self, symbol: str, side: Side, price: Decimal, qty: int) -> None:
        """Add house liquidity (it may trade against resting client orders at once)."""
        with self._lock:
            self._next_house += 1
            nside = native.BUY if side is Side.BUY else native.SELL
            self._current_symbol = symbol
            self._apply(self.books[symbol].add(self._next_house, nside, self.ticks(price), qty, native.GTC,
                                               OTHER_OWNER))
            self._publish(symbol)

    def cancel_unsolicited(self, session: str, cl_ord_id: str, text: str = "canceled by venue",
                           restatement_reason: int | None = None) -> None:
        """Cancel a resting order on the venue's own initiative (App D E.1.b), with the
        ExecRestatementReason(378) given (6 = cancel on trading halt, 2 = verbal change ...)."""
        self._end_unsolicited(session, cl_ord_id, OrdStatus.CANCELED, ExecType.CANCELED, text, restatement_reason)

    def done_for_day(self, session: str, cl_ord_id: str, text: str = "done for day") -> None:
        """End a resting order for the trading day (ExecType/OrdStatus 3, DoneForDay), as a venue does at
        its close: the order leaves the book and this venue no longer works it."""
        self._end_unsolicited(session, cl_ord_id, OrdStatus.DONE_FOR_DAY, ExecType.DONE_FOR_DAY, text, None)

    def _end_unsolicited(self, session: str, cl_ord_id: str, status: OrdStatus, exec_type: ExecType, text: str,
                         restatement_reason: int | None) -> None:
        with self._lock:
            o = self.orders[self.by_cl_ord_id[(session, cl_ord_id)]]
            events = self.books[o.symbol].cancel(o.vid)
            for e in events:
                if e.kind == native.EV_CANCELED:
                    o.status = status
                    self._send(o, exec_type, text=text, restatement_reason=restatement_reason)

    def _apply(self, events: list[Any]) -> None:
        for e in events:
            if e.kind == native.EV_FILL:
                px = self.price(e.price)
                for vid in (e.maker_id, e.order_id):
                    o = self.orders.get(vid)
                    if o is None:
                        continue  # house liquidity
                    o.cum += e.qty
                    o.notional += e.qty * px
                    o.status = OrdStatus.FILLED if o.cum >= o.qty else OrdStatus.PARTIALLY_FILLED
                    exec_id = self._send(o, ExecType.TRADE, last_qty=e.qty, last_px=px)
                    self.last_fill[o.vid] = (exec_id, e.qty, px)
                sym = self._symbol_of(e)
                if sym:  # every trade is public: it goes out as an MD trade entry
                    self._trades.append((sym, px, Decimal(e.qty)))
            elif e.kind == native.EV_CANCELED:
                o = self.orders.get(e.order_id)
                if o is None or o.leaves == 0:
                    continue
                o.status = OrdStatus.CANCELED
                cancel_id = self.cancel_ids.pop(o.vid, None)
                text = {native.R_IOC_UNFILLED: "IOC remainder canceled", native.R_FOK_UNFILLABLE: "FOK not filled",
                        native.R_SELF_MATCH: "self-match prevented"}.get(e.reason, "canceled")
                if cancel_id:
                    self._send(o, ExecType.CANCELED, cl_ord_id=cancel_id, orig=o.cl_ord_id, text=text)
                else:
                    self._send(o, ExecType.CANCELED, text=text)
            elif e.kind == native.EV_REJECTED:
                o = self.orders.get(e.order_id)
                if o is None:
                    continue
                o.status = OrdStatus.REJECTED
                self._send(o, ExecType.REJECTED, text=f"rejected by book (reason {e.reason})")

    def _symbol_of(self, e: Any) -> str:
        o = self.orders.get(e.order_id) or self.orders.get(e.maker_id)
        return o.symbol if o is not None else self._current_symbol

    def _replenish(self, symbol: str) -> None:
        book = self.books[symbol]
        if book.best_bid() is None:
            self._seed(symbol, native.BUY)
        if book.best_ask() is None:
            self._seed(symbol, native.SELL)


def simulator_settings(name: str, port: int, var_dir: Path) -> Any:
    """A one-session acceptor config for the engine's initiator (TargetCompID FIXOMS)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    cfg = var_dir / f"{name}.cfg"
    cfg.write_text(
        "\n".join(
            [
                "[DEFAULT]",
                "ConnectionType=acceptor",
                f"SocketAcceptPort={port}",
                f"FileStorePath={var_dir / 'store'}",
                f"FileLogPath={var_dir / 'log'}",
                "StartTime=00:00:00",
                "EndTime=00:00:00",
                "UseDataDictionary=Y",
                f"DataDictionary={settings.resolve_dictionary('FIX44.xml')}",
                "SocketNodelay=Y",
                "[SESSION]",
                "BeginString=FIX.4.4",
                f"SenderCompID={name}",
                "TargetCompID=FIXOMS",
                "",
            ]
        )
    )
    return fix.SessionSettings(str(cfg))


def stable_seed(name: str, seed: int) -> int:
    return seed * 1_000_003 + zlib.crc32(name.encode())


class SimulatorServer:
    """Runs a VenueSimulator behind a QuickFIX SocketAcceptor."""

    def __init__(self, name: str, port: int, var_dir: Path, seed: int = 1,
                 symbols: dict[str, Decimal] | None = None, levels: int = 5, latency_ms: float = 0.0,
                 activity_ms: float = 0.0) -> None:
        self.app = VenueSimulator(name, symbols, seed=stable_seed(name, seed), levels=levels)
        self.app.latency = latency_ms / 1000
        self.activity = activity_ms / 1000
        self.seed = seed
        self.settings = simulator_settings(name, port, Path(var_dir))
        taken = settings.registered(self.settings)
        if taken:  # its sessions would stay out of QuickFIX's registry: logons went to the live one's
            raise RuntimeError(f"QuickFIX sessions {', '.join(taken)} already exist in this process: a simulator "
                               f"of {name} is still alive (stop() it first)")
        # The C++ acceptor keeps raw pointers to the factories: they must live as long as it does.
        self.store_factory = fix.FileStoreFactory(self.settings)
        self.log_factory = fix.FileLogFactory(self.settings)
        self.acceptor = fix.ThreadedSocketAcceptor(self.app, self.store_factory, self.settings, self.log_factory)

    def start(self) -> None:
        try:
            self.acceptor.start()
            if self.activity > 0:
                self.app.start_activity(self.activity, stable_seed(self.app.name, self.seed))
        except BaseException:
            self.stop()  # a failed start leaves no session registered (settings.registered)
            raise

    def stop(self) -> None:
        # Destroy the acceptor now, not at garbage collection: QuickFIX's global session registry is
        # keyed by SessionID, and a late destructor would unregister a newer session with the same id.
        self.app.stop_activity()
        if self.acceptor is not None:
            self.acceptor.stop()
            # the activity thread may be sending still: not into a session being deleted
            if not self.app.close():
                return
            acceptor, self.acceptor = self.acceptor, None
            destroy(acceptor)
            self.store_factory = self.log_factory = None
