"""The order aggregate (a client's parent order) and its venue children.

State changes only through `Order.apply(event)`; the engine decides, the events record, the aggregate
follows. Invariants (checked by `Order.check`): CumQty <= OrderQty; CumQty + LeavesQty = OrderQty while
the order works; parent CumQty + working child quantity <= OrderQty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from oms import events as ev
from oms.enums import TERMINAL, OrdRejReason, OrdStatus, OrdType, Side, TimeInForce, reported_status
from oms.state_machine import (
    BY_QUANTITY,
    CHILD_IN_DOUBT,
    ChildTransition,
    IllegalTransition,
    Transition,
    next_child_status,
    next_status,
)

ZERO = Decimal(0)
# A child's status while its venue is away (oms.events.ChildInDoubt). Children are never reported to
# clients with their own status, so the otherwise unused Suspended value marks it in the journal.
IN_DOUBT = CHILD_IN_DOUBT


@dataclass(slots=True)
class Child:
    child_id: str
    order_id: str
    venue: str
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    time_in_force: TimeInForce
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    status: OrdStatus = OrdStatus.PENDING_NEW
    venue_order_id: str = ""
    cancel_id: str = ""
    text: str = ""
    restatement_reason: int | None = None  # the venue's ExecRestatementReason(378) when it ended the child
    # The ClOrdID the venue knows the child by since its last amend ("": the child's own id).
    venue_cl_ord_id: str = ""
    # An amend (OrderCancelReplaceRequest) the venue has not answered: its ClOrdID and the terms it asked.
    amend_id: str = ""
    amend_qty: Decimal | None = None
    amend_price: Decimal | None = None

    def move(self, transition: ChildTransition) -> None:
        self.status = next_child_status(self.status, transition)
        if self.status is not OrdStatus.PENDING_REPLACE:
            self.amend_id, self.amend_qty, self.amend_price = "", None, None
        self.settle_by_quantity()

    def settle_by_quantity(self) -> None:
        # A replace answered (or refused) lands on NEW; what already filled decides where it stays.
        if self.status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED) and self.cum_qty > 0:
            self.status = OrdStatus.FILLED if self.cum_qty >= self.qty else OrdStatus.PARTIALLY_FILLED

    @property
    def venue_id(self) -> str:
        """The ClOrdID the venue knows the child by now: OrigClOrdID of our next cancel or amend."""
        return self.venue_cl_ord_id or self.child_id

    @property
    def done(self) -> bool:
        """Not working: ended at the venue, or in doubt (its venue went away; see ChildInDoubt)."""
        return self.status in TERMINAL or self.status is IN_DOUBT

    @property
    def in_doubt(self) -> bool:
        return self.status is IN_DOUBT

    @property
    def working_qty(self) -> Decimal:
        return ZERO if self.done else self.qty - self.cum_qty

    @property
    def avg_px(self) -> Decimal:
        return self.notional / self.cum_qty if self.cum_qty else ZERO


@dataclass(slots=True)
class Order:
    order_id: str
    seq: int
    session: str
    account: str
    cl_ord_id: str
    symbol: str
    side: Side | None
    ord_type: OrdType | None
    time_in_force: TimeInForce
    order_qty: Decimal
    price: Decimal | None
    stop_px: Decimal | None
    created_at: datetime
    status: OrdStatus = OrdStatus.PENDING_NEW
    pending: OrdStatus | None = None
    pending_cl_ord_id: str | None = None
    pending_qty: Decimal | None = None
    pending_price: Decimal | None = None
    pending_ord_type: OrdType | None = None
    pending_tif: TimeInForce | None = None
    orig_cl_ord_id: str | None = None
    expire_time: datetime | None = None
    max_floor: Decimal | None = None
    ex_destination: str | None = None
    target_strategy: str | None = None
    arrival_mid: Decimal | None = None
    held: bool = False
    expiring: bool = False
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    last_qty: Decimal = ZERO
    last_px: Decimal = ZERO
    text: str = ""
    rej_reason: OrdRejReason | None = None
    report_seq: int = 0
    child_seq: int = 0
    updated_at: datetime | None = None
    # A GT order (GTC/GTD) its venue ended for the day: still open (LeavesQty kept), reported DoneForDay,
    # worked again when the next session start renews it. An overlay like `pending`: the base status
    # keeps following CumQty underneath.
    done_for_day: bool = False
    children: dict[str, Child] = field(default_factory=dict)

    # --- derived -----------------------------------------------------------------------------
    @property
    def ord_status(self) -> OrdStatus:
        return reported_status(self.status, self.pending, OrdStatus.DONE_FOR_DAY if self.done_for_day else None)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.is_terminal else self.order_qty - self.cum_qty

    @property
    def avg_px(self) -> Decimal:
        return (self.notional / self.cum_qty).quantize(Decimal("0.000001")) if self.cum_qty else ZERO

    @property
    def working_child_qty(self) -> Decimal:
        return sum((c.working_qty for c in self.children.values()), ZERO)

    @property
    def unrouted_qty(self) -> Decimal:
        return self.leaves_qty - self.working_child_qty

    @property
    def child_ord_type(self) -> OrdType:
        """What goes to a venue: a broker-held stop, once elected, is a market or limit order."""
        if self.ord_type is OrdType.STOP:
            return OrdType.MARKET
        if self.ord_type is OrdType.STOP_LIMIT:
            return OrdType.LIMIT
        return self.ord_type or OrdType.LIMIT

    @property
    def child_tif(self) -> TimeInForce:
        # The broker expires GTD itself, so the venue holds it as GTC.
        return TimeInForce.GTC if self.time_in_force is TimeInForce.GTD else self.time_in_force

    def next_exec_id(self) -> str:
        self.report_seq += 1
        return f"{self.order_id}-{self.report_seq}"

    def next_child_id(self) -> str:
        self.child_seq += 1
        return f"{self.order_id}.{self.child_seq}"

    def check(self) -> None:
        assert self.cum_qty <= self.order_qty, f"{self.order_id}: overfill {self.cum_qty} > {self.order_qty}"
        if not self.is_terminal:
            assert self.cum_qty + self.leaves_qty == self.order_qty
        assert self.cum_qty + self.working_child_qty <= self.order_qty, f"{self.order_id}: over-routed"

    # --- the only way state changes ------------------------------------------------------------
    def _move(self, transition: Transition) -> None:
        self.status = next_status(self.status, transition)
        if self.status in TERMINAL:
            self.done_for_day = False  # an order that ended (canceled, expired, filled) rests no more
            if self.status is not OrdStatus.FILLED:
                self._clear_pending()

    def _clear_pending(self) -> None:
        self.pending = None
        self.pending_cl_ord_id = None
        self.pending_qty = self.pending_price = None
        self.pending_ord_type = self.pending_tif = None

    def _by_quantity(self) -> None:
        # A fill during a pending cancel/replace leaves the pending overlay: the report shows it, and
        # the engine answers the request (too late / replaced) right after.
        if self.status in BY_QUANTITY:
            if self.cum_qty >= self.order_qty:
                self.status = OrdStatus.FILLED
                self.done_for_day = False
            elif self.cum_qty > 0:
                self.status = OrdStatus.PARTIALLY_FILLED
            else:
                self.status = OrdStatus.NEW

    def apply(self, event: ev.Event) -> None:
        """Every change of the order's state, fills included, is an event applied here (as NautilusTrader's
        Order.apply); an illegal transition raises IllegalTransition. Dispatched by the event's type
        (_APPLY); an event that changes nothing here (TcaRecorded, say) only clears LastQty/LastPx."""
        step = _APPLY.get(type(event))
        if step is not None:
            step(self, event)
        self.last_event_clears_fill(event)

    def _order_accepted(self, event: ev.OrderAccepted) -> None:
        self._move(Transition.ACCEPT)

    def _order_rejected(self, event: ev.OrderRejected) -> None:
        self.rej_reason = event.reason
        self.text = event.text
        self._move(Transition.REJECT)

    def _child_routed(self, event: ev.ChildRouted) -> None:
        self.children[event.child_id] = Child(
            event.child_id, self.order_id, event.venue, event.qty, event.price, event.ord_type,
            event.time_in_force,
        )
        self.child_seq = max(self.child_seq, int(event.child_id.rsplit(".", 1)[1]))

    def _child_acked(self, event: ev.ChildAcked) -> None:
        child = self.children[event.child_id]
        child.venue_order_id = event.venue_order_id
        child.move(ChildTransition.ACK)

    def _child_filled(self, event: ev.ChildFilled) -> None:
        child = self.children[event.child_id]
        child.cum_qty += event.last_qty
        child.notional += event.last_qty * event.last_px
        # (a late fill of an ended or in-doubt child does not revive it: see CHILD_TRANSITIONS)
        child.move(ChildTransition.FILL_ALL if child.cum_qty >= child.qty else ChildTransition.FILL)
        self.cum_qty += event.last_qty
        self.notional += event.last_qty * event.last_px
        self.last_qty, self.last_px = event.last_qty, event.last_px
        self._move(Transition.FILL)
        self._by_quantity()
        self._seen_exec_id(event.exec_id)

    def _fill_busted(self, event: ev.FillBusted) -> None:
        child = self.children[event.child_id]
        child.cum_qty -= event.qty
        child.notional -= event.qty * event.px
        self.cum_qty -= event.qty
        self.notional -= event.qty * event.px
        # App D J.1.b: a TradeCancel executes nothing; only CumQty, AvgPx and LeavesQty are restated.
        self.last_qty, self.last_px = ZERO, ZERO
        self._move(Transition.BUST)
        self._by_quantity()
        self._seen_exec_id(event.exec_id)

    def _fill_corrected(self, event: ev.FillCorrected) -> None:
        child = self.children[event.child_id]
        delta = event.new_qty - event.old_qty
        delta_notional = event.new_qty * event.new_px - event.old_qty * event.old_px
        child.cum_qty += delta
        child.notional += delta_notional
        self.cum_qty += delta
        self.notional += delta_notional
        self.last_qty, self.last_px = event.new_qty, event.new_px
        self._move(Transition.CORRECT)
        self._by_quantity()
        self._seen_exec_id(event.exec_id)

    def _order_triggered(self, event: ev.OrderTriggered) -> None:
        self.held = False

    def _child_cancel_requested(self, event: ev.ChildCancelRequested) -> None:
        child = self.children[event.child_id]
        child.move(ChildTransition.CANCEL_REQUEST)
        child.cancel_id = event.cancel_id

    def _child_cancel_refused(self, event: ev.ChildCancelRefused) -> None:
        child = self.children[event.child_id]
        child.move(ChildTransition.CANCEL_REFUSED)
        child.cancel_id = ""

    def _child_in_doubt(self, event: ev.ChildInDoubt) -> None:
        child = self.children[event.child_id]
        child.move(ChildTransition.IN_DOUBT)
        child.cancel_id = ""
        child.text = event.text

    def _child_replace_requested(self, event: ev.ChildReplaceRequested) -> None:
        child = self.children[event.child_id]
        child.move(ChildTransition.REPLACE_REQUEST)
        child.amend_id, child.amend_qty, child.amend_price = event.amend_id, event.qty, event.price

    def _child_replaced(self, event: ev.ChildReplaced) -> None:
        child = self.children[event.child_id]
        amend_id, qty, price = child.amend_id, child.amend_qty, child.amend_price
        child.move(ChildTransition.REPLACED)  # raises unless an amend is outstanding
        assert qty is not None
        # Down to or below what already filled ends the child filled at CumQty (App D C.3.b/c).
        child.qty, child.price, child.venue_cl_ord_id = max(qty, child.cum_qty), price, amend_id
        child.settle_by_quantity()

    def _child_replace_refused(self, event: ev.ChildReplaceRefused) -> None:
        self.children[event.child_id].move(ChildTransition.REPLACE_REFUSED)

    def _child_done(self, event: ev.ChildDone) -> None:
        child = self.children[event.child_id]
        child.move(ChildTransition.REJECTED if event.rejected
                   else ChildTransition.DONE_FOR_DAY if event.done_for_day else ChildTransition.CANCELED)
        child.text = event.text
        child.restatement_reason = event.restatement_reason

    def _cancel_requested(self, event: ev.CancelRequested) -> None:
        self.pending = OrdStatus.PENDING_CANCEL
        self.pending_cl_ord_id = event.cl_ord_id or None
        if event.text:
            self.text = event.text

    def _replace_requested(self, event: ev.ReplaceRequested) -> None:
        self.pending = OrdStatus.PENDING_REPLACE
        self.pending_cl_ord_id = event.cl_ord_id
        self.pending_qty = event.order_qty
        self.pending_price = event.price
        self.pending_ord_type = event.ord_type
        self.pending_tif = event.time_in_force

    def _order_replaced(self, event: ev.OrderReplaced) -> None:
        assert self.pending_cl_ord_id and self.pending_qty is not None
        self.orig_cl_ord_id, self.cl_ord_id = self.cl_ord_id, self.pending_cl_ord_id
        # Replacing down to or below CumQty ends the order Filled at OrderQty = CumQty: never CumQty > OrderQty.
        self.order_qty = max(self.pending_qty, self.cum_qty)
        self.price = self.pending_price
        self.ord_type = self.pending_ord_type or self.ord_type
        self.time_in_force = self.pending_tif or self.time_in_force
        self._clear_pending()
        self._move(Transition.REPLACE)
        self._by_quantity()

    def _cancel_refused(self, event: ev.CancelRefused) -> None:
        self._clear_pending()

    def _order_canceled(self, event: ev.OrderCanceled) -> None:
        if self.pending is OrdStatus.PENDING_CANCEL and self.pending_cl_ord_id:
            self.orig_cl_ord_id, self.cl_ord_id = self.cl_ord_id, self.pending_cl_ord_id
        self.text = event.text
        self._move(Transition.CANCEL)

    def _expiry_requested(self, event: ev.ExpiryRequested) -> None:
        self.expiring = True
        self.text = event.text

    def _order_expired(self, event: ev.OrderExpired) -> None:
        self.text = event.text
        self._move(Transition.EXPIRE)

    def _order_done_for_day(self, event: ev.OrderDoneForDay) -> None:
        self.text = event.text
        if not event.stays_open:
            self._move(Transition.DONE_FOR_DAY)
        elif self.done_for_day:
            raise IllegalTransition(f"{self.order_id} is done for the day already")
        else:
            self._move(Transition.REST)
            self.done_for_day = True

    def _order_renewed(self, event: ev.OrderRenewed) -> None:
        if not self.done_for_day:
            raise IllegalTransition(f"{self.order_id} is not done for the day: nothing to renew")
        self._move(Transition.RENEW)
        self.done_for_day = False
        self.text = ""

    def _seen_exec_id(self, exec_id: str) -> None:
        self.report_seq = max(self.report_seq, int(exec_id.rsplit("-", 1)[1]))

    def last_event_clears_fill(self, event: ev.Event) -> None:
        # LastQty/LastPx belong to the report of a fill (or its bust/correction) only.
        if type(event) not in _FILL_EVENTS:
            self.last_qty = ZERO
            self.last_px = ZERO

    @classmethod
    def from_accepted(cls, e: ev.OrderAccepted) -> Order:
        order = cls(
            e.order_id, e.seq, e.session, e.account, e.cl_ord_id, e.symbol, e.side, e.ord_type,
            e.time_in_force, e.order_qty, e.price, e.stop_px, e.ts,
            expire_time=e.expire_time, max_floor=e.max_floor, ex_destination=e.ex_destination, held=e.held,
            target_strategy=e.target_strategy, arrival_mid=e.arrival_mid,
        )
        order.apply(e)
        return order

    @classmethod
    def from_rejected(cls, e: ev.OrderRejected) -> Order:
        order = cls(
            e.order_id, e.seq, e.session, e.account, e.cl_ord_id, e.symbol, e.side, e.ord_type,
            TimeInForce.DAY, e.order_qty, e.price, None, e.ts,
        )
        order.apply(e)
        return order


# Order.apply's dispatch: event type -> what it does to the order.
_APPLY: dict[type, Callable[[Order, Any], None]] = {
    ev.OrderAccepted: Order._order_accepted,
    ev.OrderRejected: Order._order_rejected,
    ev.ChildRouted: Order._child_routed,
    ev.ChildAcked: Order._child_acked,
    ev.ChildFilled: Order._child_filled,
    ev.FillBusted: Order._fill_busted,
    ev.FillCorrected: Order._fill_corrected,
    ev.OrderTriggered: Order._order_triggered,
    ev.ChildCancelRequested: Order._child_cancel_requested,
    ev.ChildCancelRefused: Order._child_cancel_refused,
    ev.ChildInDoubt: Order._child_in_doubt,
    ev.ChildReplaceRequested: Order._child_replace_requested,
    ev.ChildReplaced: Order._child_replaced,
    ev.ChildReplaceRefused: Order._child_replace_refused,
    ev.ChildDone: Order._child_done,
    ev.CancelRequested: Order._cancel_requested,
    ev.ReplaceRequested: Order._replace_requested,
    ev.OrderReplaced: Order._order_replaced,
    ev.CancelRefused: Order._cancel_refused,
    ev.OrderCanceled: Order._order_canceled,
    ev.ExpiryRequested: Order._expiry_requested,
    ev.OrderExpired: Order._order_expired,
    ev.OrderDoneForDay: Order._order_done_for_day,
    ev.OrderRenewed: Order._order_renewed,
}
# The events whose report carries LastQty/LastPx (a fill, its bust or its correction).
_FILL_EVENTS: frozenset[type] = frozenset({ev.ChildFilled, ev.FillBusted, ev.FillCorrected})
