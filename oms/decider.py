"""The decider: the engine's business rules, without I/O (see Decider).

oms.engine runs it: the thread, the batching, the journal append, the sends, the retries and the
timers are there.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from oms import commands as c
from oms import events as ev
from oms.enums import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecRestatementReason,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from oms.model import ZERO, Child, Order
from oms.ports import ChildPlan, RiskGate, Router
from oms.reports import (
    CancelReject,
    ExecutionReport,
    MassCancelReport,
    Outbound,
    VenueCancel,
    VenueStatusRequest,
    report,
    venue_new,
    venue_replace,
)
from oms.validation import validate_new, validate_replace

log = logging.getLogger(__name__)

# How often an order's unfilled IOC children are re-routed before the rest is canceled back.
MAX_REROUTES = 20
# Orders that stay open when their venue is done for the day, to be renewed at the next session start.
GOOD_TILL = frozenset({TimeInForce.GTC, TimeInForce.GTD})


@dataclass
class EngineConfig:
    instance: str = "OMS1"
    symbols: frozenset[str] = frozenset()
    # Account used when a client's NewOrderSingle carries no Account(1), by session.
    default_accounts: dict[str, str] = field(default_factory=dict)
    # Client sessions whose working orders are canceled when they drop.
    cancel_on_disconnect: frozenset[str] = frozenset()
    # Seconds to wait before retrying a batch whose commit failed.
    retry_delay: float = 0.5
    # Venue faults (docs/operations.md). A venue whose session dropped gets this long to come back
    # before its open children are put in doubt and the parents' rest is routed elsewhere.
    venue_down_grace_s: float = 3.0
    # How long a venue gets to acknowledge a new order or a cancel. Then it is asked for the order's
    # status, and after as long again the child is put in doubt (a new order) or the client's cancel
    # refused (a cancel), and the venue gets no new orders until it answers again.
    venue_ack_timeout_s: float = 2.0
    # Venues that keep our orders when the session drops (no cancel-on-disconnect): their children are
    # never re-routed on a drop, they wait for the venue to come back and be reconciled.
    venues_keep_orders: frozenset[str] = frozenset()
    # How often the ticker submits a Tick; 0 starts no ticker (tests submit Tick themselves).
    tick_s: float = 0.25


@dataclass(slots=True)
class _Watch:
    """A venue request waiting for its answer: "new" (the ack), "cancel" or "amend"; stage 1 once the
    status request has gone out."""

    kind: str
    since: float
    stage: int = 0


# How many venue_ack_timeout_s a request may wait while its venue keeps answering other requests
BUSY_VENUE_WAIT = 5
# A venue's answers that end a child: whatever we were waiting to hear about it is answered.
_ENDING = frozenset({ExecType.CANCELED, ExecType.EXPIRED, ExecType.DONE_FOR_DAY, ExecType.REJECTED})
# At most this many status requests to one venue per tick about requests it left unanswered: the rest are
# asked at later ticks. A venue that went silent with thousands of requests outstanding (a mass cancel)
# would otherwise get one status request for each at once, doubling what it has not read yet.
STATUS_REQUESTS_PER_TICK = 25


@dataclass
class Decision:
    """What one batch decided: events, the orders they changed, messages to send, operator replies."""

    events: list[ev.Event] = field(default_factory=list)
    dirty: dict[str, Order] = field(default_factory=dict)
    outbound: list[Outbound] = field(default_factory=list)
    # answers to operators, run after the commit
    replies: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, order: Order, event: ev.Event) -> None:
        order.apply(event)
        self.events.append(event)
        self.dirty[order.order_id] = order


def _now() -> datetime:
    return datetime.now(UTC)


class Decider:
    """The engine's business rules: command + state -> events (applied to the orders) and outbound
    messages, collected in a Decision. No I/O: no journal, no sockets, no threads; `orders` and
    `by_child` may be mappings that read a finished order back when something names it (the runner gives
    it those), which the decider does not know. Tested alone in tests/oms/test_decider.py."""

    def __init__(self, router: Router, config: EngineConfig) -> None:
        self.router = router
        self.config = config
        # MutableMapping, not dict: the runner puts its LoadingDicts here (oms.lazymap), whose lookups read
        # finished orders back (code compiled with mypyc would reach a declared dict's items directly).
        self.orders: MutableMapping[str, Order] = {}
        self.by_cl_ord_id: dict[tuple[str, str], str] = {}
        self.by_child: MutableMapping[str, tuple[str, str]] = {}
        self.venue_exec_ids: set[tuple[str, str]] = set()
        self.venues_up: set[str] = set()
        self.sessions_up: set[str] = set()
        self.fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]] = {}
        self.held: dict[str, set[str]] = {}
        self.last_price: dict[str, Decimal] = {}
        self.quotes: dict[tuple[str, str], tuple[Decimal | None, Decimal | None]] = {}
        self.risk: RiskGate | None = None
        self._reroutes: dict[str, int] = {}
        # Venue faults, all decided on Tick: when each venue dropped, requests awaiting an answer (by
        # child id), venues that stopped answering (no new children until they answer again).
        self._down_since: dict[str, float] = {}
        self._watch: dict[str, _Watch] = {}
        # venue -> when it last answered about any child: a venue still answering is busy, not silent
        self._heard: dict[str, float] = {}
        # The clock of the venue timeouts, in Tick's time base (a test drives both)
        self.clock: Callable[[], float] = time.monotonic
        # symbol -> venues that halted trading in it (their SecurityStatus): market state, not journaled;
        # a venue sends it again when the engine subscribes after a restart or reconnect.
        self.halted_at: dict[str, set[str]] = {}
        # The last acknowledgement times per venue (child routed -> venue's New), for `venues list`.
        self.venue_ack_s: dict[str, deque[float]] = {}
        self.suspect: set[str] = set()
        self._probe_at: dict[str, float] = {}
        # Figures of a finished parent (set by the wiring: sor.tca); journaled as TcaRecorded.
        self.tca: Callable[[Order], dict[str, Any]] | None = None
        self._tca_done: set[str] = set()
        self._seq = 0
        # GT orders due for renewal while no venue could take their symbol: renewed when one logs on.
        self._renew_waiting: set[str] = set()
        # (ExpireTime, order id) of each GTD order, soonest first: the GTD job (every second) looks at the
        # orders that are due, not at every working order (10,000 resting orders took the engine thread
        # milliseconds a second). Entries of orders that ended meanwhile are dropped when they come up.
        self._gtd: list[tuple[datetime, str]] = []

    def _file(self, order: Order) -> None:
        """Index an order held in memory under its ClOrdIDs and its children's venue ClOrdIDs."""
        # A replace's ClOrdID is in the journal's list only since this version: file the order's own.
        for cl_ord_id in (order.cl_ord_id, order.orig_cl_ord_id, order.pending_cl_ord_id):
            if cl_ord_id:
                self.by_cl_ord_id.setdefault((order.session, cl_ord_id), order.order_id)
        for child in order.children.values():
            for venue_id in (child.child_id, child.cancel_id, child.venue_cl_ord_id, child.amend_id):
                if venue_id:
                    self.by_child[venue_id] = (order.order_id, child.child_id)

    def decide(self, commands: list[Any]) -> Decision:
        """Handle a batch of commands: everything they decide, in one Decision. A command the decider fails
        on is logged and, if it was a client request, still answered (rule: never silence)."""
        b = Decision()
        for cmd in commands:
            try:
                self._handle(cmd, b)
            except Exception:  # one bad command must not take the others down
                log.exception("engine failed on %r", cmd)
                self._answer_failed(cmd, b)
        self._record_tca(b)
        return b

    def _answer_failed(self, cmd: Any, b: Decision) -> None:
        """A client request the engine failed on still gets an answer (rule: never silence). Only a
        request that did not get as far as an order or a report is answered here."""
        text = "request could not be processed (internal error, logged by the broker)"
        if isinstance(cmd, c.NewOrder):
            if (cmd.session, cmd.cl_ord_id) in self.by_cl_ord_id:
                return
            b.outbound.append(_refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, cmd.order_qty,
                                       OrdRejReason.OTHER, text))
        elif isinstance(cmd, c.CancelOrder | c.ReplaceOrder):
            if any(getattr(o, "cl_ord_id", None) == cmd.cl_ord_id and getattr(o, "session", None) == cmd.session
                   for o in b.outbound):
                return
            response_to = (CxlRejResponseTo.CANCEL if isinstance(cmd, c.CancelOrder)
                           else CxlRejResponseTo.REPLACE)
            b.outbound.append(CancelReject(cmd.session, "NONE", cmd.cl_ord_id, cmd.orig_cl_ord_id,
                                           OrdStatus.REJECTED, response_to, CxlRejReason.OTHER, text))

    def _record_tca(self, b: Decision) -> None:
        if self.tca is None:
            return
        for order in b.dirty.values():
            if order.is_terminal and order.order_id not in self._tca_done and order.rej_reason is None:
                self._tca_done.add(order.order_id)
                try:
                    b.events.append(ev.TcaRecorded(order.order_id, self.tca(order)))
                except Exception:
                    log.exception("TCA failed for %s", order.order_id)

    def _handle(self, cmd: Any, b: Decision) -> None:
        handler = _HANDLERS.get(type(cmd))
        if handler is None:
            log.warning("no handler for %r", cmd)
            return
        handler(self, cmd, b)

    # --- client requests ---------------------------------------------------------------------
    def _on_new(self, cmd: c.NewOrder, b: Decision) -> None:
        known = self.by_cl_ord_id.get((cmd.session, cmd.cl_ord_id))
        if known is not None:
            if cmd.poss_resend and self._answer_repeat(cmd.session, cmd.cl_ord_id, b):
                return
            text = f"duplicate ClOrdID {cmd.cl_ord_id!r}"
            b.events.append(ev.RequestRefused(known, cmd.session, cmd.cl_ord_id, "D", text))
            b.outbound.append(
                _refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, cmd.order_qty,
                         OrdRejReason.DUPLICATE_ORDER, text)
            )
            return
        self._seq += 1
        order_id = f"{self.config.instance}-{self._seq}"
        account = cmd.account or self.config.default_accounts.get(cmd.session, "")
        refusal = validate_new(cmd, self.config.symbols, _now())
        if refusal is None and self.risk is not None:
            refusal = self.risk.check_new(cmd, account, order_id)
        if refusal is None:
            held = cmd.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT)
            accepted = ev.OrderAccepted(
                order_id, self._seq, cmd.session, account, cmd.cl_ord_id, cmd.symbol, cmd.side,
                cmd.ord_type, cmd.time_in_force, cmd.order_qty, cmd.price, cmd.stop_px, _now(),
                expire_time=cmd.expire_time, max_floor=cmd.max_floor, ex_destination=cmd.ex_destination, held=held,
                target_strategy=cmd.target_strategy, arrival_mid=self.reference_price(cmd.symbol),
            )
            order = Order.from_accepted(accepted)
            plans = [] if held else self.router.route(order, order.order_qty, self._routable(order.symbol))
            if held or plans:
                self._register(order, accepted, b)
                if self.risk is not None:
                    self.risk.on_accepted(order)
                b.outbound.append(report(order, ExecType.NEW))
                if held:
                    self.held.setdefault(order.symbol, set()).add(order.order_id)
                    self._elect(order.symbol, b)
                for plan in plans:
                    self._route_child(order, plan, b)
                return
            reason, text = OrdRejReason.EXCHANGE_CLOSED, f"no venue available for {cmd.symbol}"
        else:
            reason, text = refusal.reason, refusal.text
        rejected = ev.OrderRejected(
            order_id, self._seq, cmd.session, account, cmd.cl_ord_id, cmd.symbol, cmd.side, cmd.ord_type,
            cmd.order_qty, cmd.price, reason, text, _now(),
        )
        order = Order.from_rejected(rejected)
        self._register(order, rejected, b)
        b.outbound.append(report(order, ExecType.REJECTED))

    def _register(self, order: Order, event: ev.Event, b: Decision) -> None:
        self.orders[order.order_id] = order
        self._watch_expiry(order)
        self.by_cl_ord_id[(order.session, order.cl_ord_id)] = order.order_id
        b.events.append(event)
        b.dirty[order.order_id] = order

    def _route_child(self, order: Order, plan: ChildPlan, b: Decision) -> None:
        child_id = order.next_child_id()
        b.emit(order, ev.ChildRouted(order.order_id, child_id, plan.venue, plan.qty, plan.price, plan.ord_type,
                                     plan.time_in_force))
        self.by_child[child_id] = (order.order_id, child_id)
        self._watch[child_id] = _Watch("new", self.clock())
        b.outbound.append(venue_new(order, order.children[child_id]))

    def _route_residual(self, order: Order, b: Decision) -> bool:
        """Send what is neither filled nor working to venues. False when no venue can take it."""
        qty = order.unrouted_qty
        if qty <= 0 or order.is_terminal or order.held or order.done_for_day:  # resting: renewal routes it
            return True
        plans = self.router.route(order, qty, self._routable(order.symbol))
        for plan in plans:
            self._route_child(order, plan, b)
        return bool(plans)

    def _on_invalid(self, cmd: c.InvalidOrder, b: Decision) -> None:
        b.events.append(ev.RequestRefused(None, cmd.session, cmd.cl_ord_id, "D", cmd.text))
        try:
            qty = Decimal(cmd.order_qty or 0)
        except ArithmeticError:
            qty = ZERO
        b.outbound.append(_refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side, qty, cmd.reason, cmd.text))

    def _find_client_order(self, session: str, cl_ord_id: str, order_id: str | None) -> Order | None:
        found = self.by_cl_ord_id.get((session, cl_ord_id))
        if found is None and order_id:
            found = order_id
        order = self.orders.get(found) if found else None
        # Entitlement: a session sees only its own orders; anything else is "unknown".
        if order is None or order.session != session:
            return None
        return order

    def _answer_repeat(self, session: str, cl_ord_id: str, b: Decision) -> bool:
        """A request sent again (PossResend or PossDupFlag) whose ClOrdID we already took - a new order, a
        cancel or a replace - is answered with its order's status, not refused as a duplicate. False if
        the ClOrdID is not one of this session's."""
        order = self._find_client_order(session, cl_ord_id, None)
        if order is None:
            return False
        b.outbound.append(report(order, ExecType.ORDER_STATUS, cl_ord_id=cl_ord_id))
        return True

    def _check_request(
        self, session: str, cl_ord_id: str, orig_cl_ord_id: str, order_id: str | None,
        response_to: CxlRejResponseTo, msg_type: str, b: Decision, poss_resend: bool = False,
    ) -> Order | None:
        """The checks a cancel and a replace share; answers OrderCancelReject and returns None on failure."""
        if poss_resend and self._answer_repeat(session, cl_ord_id, b):
            return None
        order = self._find_client_order(session, orig_cl_ord_id, order_id)
        if order is None:
            reason, text, status = CxlRejReason.UNKNOWN_ORDER, f"unknown order {orig_cl_ord_id!r}", OrdStatus.REJECTED
        elif (session, cl_ord_id) in self.by_cl_ord_id:
            reason, text, status = (CxlRejReason.DUPLICATE_CL_ORD_ID, f"duplicate ClOrdID {cl_ord_id!r}",
                                    order.ord_status)
        elif order.is_terminal:
            reason, text, status = (CxlRejReason.TOO_LATE_TO_CANCEL, f"order is {order.ord_status.name.lower()}",
                                    order.ord_status)
        elif order.pending is not None:
            reason, text, status = (CxlRejReason.ALREADY_PENDING,
                                    f"a {order.pending.name.lower()} request is outstanding", order.ord_status)
        elif orig_cl_ord_id != order.cl_ord_id:
            # FIX: OrigClOrdID is the last accepted ClOrdID of the chain.
            reason, text, status = (CxlRejReason.BROKER_OPTION,
                                    f"OrigClOrdID must be the last accepted ClOrdID {order.cl_ord_id!r}",
                                    order.ord_status)
        else:
            return order
        b.events.append(ev.RequestRefused(order.order_id if order else None, session, cl_ord_id, msg_type, text))
        b.outbound.append(CancelReject(session, order.order_id if order else "NONE", cl_ord_id, orig_cl_ord_id,
                                       status, response_to, reason, text))
        return None

    def _on_cancel(self, cmd: c.CancelOrder, b: Decision) -> None:
        order = self._check_request(cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, cmd.order_id,
                                    CxlRejResponseTo.CANCEL, "F", b, cmd.poss_resend)
        if order is None:
            return
        orig = order.cl_ord_id
        b.emit(order, ev.CancelRequested(order.order_id, cmd.session, cmd.cl_ord_id))
        self.by_cl_ord_id[(cmd.session, cmd.cl_ord_id)] = order.order_id
        b.outbound.append(report(order, ExecType.PENDING_CANCEL, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=orig))
        self._cancel_children(order, b)
        self._settle(order, b)

    def _on_replace(self, cmd: c.ReplaceOrder, b: Decision) -> None:
        order = self._check_request(cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, cmd.order_id,
                                    CxlRejResponseTo.REPLACE, "G", b, cmd.poss_resend)
        if order is None:
            return
        refusal = validate_replace(order, cmd)
        if refusal is None and self.risk is not None:
            refusal = self.risk.check_replace(order, cmd)
        if refusal is not None:
            b.events.append(ev.RequestRefused(order.order_id, cmd.session, cmd.cl_ord_id, "G", refusal.text))
            b.outbound.append(CancelReject(cmd.session, order.order_id, cmd.cl_ord_id, cmd.orig_cl_ord_id,
                                           order.ord_status, CxlRejResponseTo.REPLACE, CxlRejReason.OTHER
                                           if refusal.reason is not OrdRejReason.EXCHANGE_CLOSED
                                           else CxlRejReason.BROKER_OPTION, refusal.text))
            return
        orig = order.cl_ord_id
        tif = cmd.time_in_force or order.time_in_force
        b.emit(order, ev.ReplaceRequested(order.order_id, cmd.session, cmd.cl_ord_id, cmd.order_qty, cmd.price,
                                          cmd.ord_type, tif))
        self.by_cl_ord_id[(cmd.session, cmd.cl_ord_id)] = order.order_id
        b.outbound.append(report(order, ExecType.PENDING_REPLACE, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=orig))
        amend = self._amend_terms(order)
        if amend is not None:
            # The working child carries the new terms: the venue amends it, and keeps its queue place
            # where its rules allow (a quantity reduction at the same price, at most venues).
            self._amend_child(order, *amend, b)
        else:
            # Several children, a plan that moves, or a venue that cannot amend: cancel-and-reroute, the
            # new terms go to venues once nothing old works.
            self._cancel_children(order, b)
        self._settle(order, b)

    def _amend_terms(self, order: Order) -> tuple[Child, Decimal, Decimal | None] | None:
        """(child, its new OrderQty, its new price) when the pending replace can be carried by the
        order's one working child as a venue amend; None when it must be cancel-and-reroute."""
        working = [ch for ch in order.children.values() if not ch.done]
        if len(working) != 1 or order.pending_qty is None:
            return None
        child = working[0]
        can_amend = getattr(self.router, "can_amend", None)
        if (child.status not in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED) or child.cancel_id
                or child.venue not in self._routable(order.symbol) or can_amend is None or not can_amend(child.venue)):
            return None  # unacknowledged, being canceled, or at a venue we cannot (or may not) amend at
        new = dataclasses.replace(order, order_qty=order.pending_qty, price=order.pending_price,
                                  ord_type=order.pending_ord_type or order.ord_type,
                                  time_in_force=order.pending_tif or order.time_in_force, children={})
        leaves = new.order_qty - order.cum_qty
        if leaves <= 0 or new.child_ord_type is not child.ord_type or new.child_tif is not child.time_in_force:
            return None  # down to CumQty (ends filled once the child is canceled), or another kind of order
        price = child.price
        if leaves > child.working_qty or new.price != order.price:
            # More to work, or another limit: only if the router would put all of it at this venue.
            plans = self.router.route(new, leaves, self._routable(order.symbol))
            if len(plans) != 1:
                return None
            plan = plans[0]
            if (plan.venue, plan.qty, plan.ord_type, plan.time_in_force) != (
                    child.venue, leaves, child.ord_type, child.time_in_force):
                return None
            price = plan.price
        return child, child.cum_qty + leaves, price

    def _amend_child(self, order: Order, child: Child, qty: Decimal, price: Decimal | None, b: Decision) -> None:
        amend_id = f"{child.child_id}~R{order.report_seq + 1}"
        b.emit(order, ev.ChildReplaceRequested(order.order_id, child.child_id, amend_id, qty, price))
        self.by_child[amend_id] = (order.order_id, child.child_id)
        self._watch[child.child_id] = _Watch("amend", self.clock())
        b.outbound.append(venue_replace(order, child))

    def _amended(self, order: Order, b: Decision) -> None:
        """After a child's amend was answered: once none is outstanding, the client's replace takes effect."""
        if order.pending is not OrdStatus.PENDING_REPLACE or any(ch.amend_id for ch in order.children.values()):
            return
        before = dataclasses.replace(order, children={})
        b.emit(order, ev.OrderReplaced(order.order_id))
        if self.risk is not None:
            self.risk.on_replaced(before, order)
        b.outbound.append(report(order, ExecType.REPLACED, orig_cl_ord_id=order.orig_cl_ord_id))
        self._route_residual(order, b)

    def _on_admin_cancel(self, cmd: c.AdminCancel, b: Decision) -> None:
        order = self.orders.get(cmd.order_id)
        if order is None or order.is_terminal or order.pending is not None:
            log.warning("operator %s: cannot cancel %s", cmd.user, cmd.order_id)
            return
        self._unsolicited_cancel(order, f"{cmd.reason} ({cmd.user})", b)

    def _unsolicited_cancel(self, order: Order, text: str, b: Decision) -> None:
        b.emit(order, ev.CancelRequested(order.order_id, order.session, "", text))
        self._cancel_children(order, b)
        self._settle(order, b)

    def _cancel_children(self, order: Order, b: Decision) -> None:
        for child in order.children.values():
            if not child.done and not child.cancel_id:
                self._cancel_child(order, child, b)

    def _cancel_child(self, order: Order, child: Child, b: Decision) -> None:
        assert order.side is not None
        cancel_id = f"{child.child_id}~{order.report_seq + 1}"
        b.emit(order, ev.ChildCancelRequested(order.order_id, child.child_id, cancel_id))
        self.by_child[cancel_id] = (order.order_id, child.child_id)
        self._watch[child.child_id] = _Watch("cancel", self.clock())
        b.outbound.append(VenueCancel(child.venue, cancel_id, child.venue_id, order.symbol, order.side, child.qty))

    def _on_status(self, cmd: c.StatusRequest, b: Decision) -> None:
        order = self._find_client_order(cmd.session, cmd.cl_ord_id, cmd.order_id)
        if order is None:
            # The request's Symbol and Side go back: the answer is an ExecutionReport, which requires them.
            b.outbound.append(
                _refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side, ZERO, OrdRejReason.UNKNOWN_ORDER,
                         f"unknown order {cmd.cl_ord_id!r}", exec_type=ExecType.ORDER_STATUS)
            )
            return
        b.outbound.append(report(order, ExecType.ORDER_STATUS, cl_ord_id=cmd.cl_ord_id, exec_id="0"))

    def _session_orders(self, session: str, request_type: str, symbol: str, side: str = "") -> list[Order] | None:
        if request_type == "7":
            match = [o for o in self.orders.values() if o.session == session]
        elif request_type == "1":
            match = [o for o in self.orders.values() if o.session == session and o.symbol == symbol]
        else:
            return None
        return [o for o in match if not o.is_terminal and (not side or (o.side and o.side.value == side))]

    def _on_mass_cancel(self, cmd: c.MassCancel, b: Decision) -> None:
        orders = self._session_orders(cmd.session, cmd.request_type, cmd.symbol, cmd.side)
        if orders is None:
            b.outbound.append(MassCancelReport(cmd.session, cmd.cl_ord_id, cmd.request_type, "0", 0,
                                               f"MassCancelRequestType {cmd.request_type} not supported (1, 7)", 0))
            return
        affected = [o for o in orders if o.pending is None]
        b.outbound.append(MassCancelReport(cmd.session, cmd.cl_ord_id, cmd.request_type, cmd.request_type,
                                           len(affected)))
        for order in affected:
            self._unsolicited_cancel(order, f"mass cancel {cmd.cl_ord_id}", b)

    def _on_mass_status(self, cmd: c.MassStatus, b: Decision) -> None:
        orders = self._session_orders(cmd.session, cmd.request_type, cmd.symbol)
        if not orders:
            text = "no open orders" if orders is not None else f"MassStatusReqType {cmd.request_type} not supported"
            ref = _refusal(cmd.session, "NONE", cmd.symbol, "", ZERO, OrdRejReason.UNKNOWN_ORDER, text,
                           exec_type=ExecType.ORDER_STATUS)
            b.outbound.append(dataclasses.replace(ref, mass_status_req_id=cmd.mass_status_req_id, tot_num_reports=0,
                                                  last_rpt_requested=True))
            return
        for i, order in enumerate(orders, 1):
            b.outbound.append(report(order, ExecType.ORDER_STATUS, exec_id="0",
                                     mass_status_req_id=cmd.mass_status_req_id, tot_num_reports=len(orders),
                                     last_rpt_requested=i == len(orders)))

    def _watch_expiry(self, order: Order) -> None:
        """File a working GTD order for the GTD job (at acceptance, and for each order a restart loads)."""
        if order.time_in_force is TimeInForce.GTD and order.expire_time is not None and not order.is_terminal:
            heapq.heappush(self._gtd, (order.expire_time, order.order_id))

    def _on_expire(self, cmd: c.ExpireOrders, b: Decision) -> None:
        if cmd.kind == "gtd":
            due: list[Order] = []
            while self._gtd and self._gtd[0][0] <= cmd.now:
                order = self.orders.get(heapq.heappop(self._gtd)[1])
                if order is not None:
                    due.append(order)
        else:
            due = list(self.orders.values())
        for order in due:
            if order.is_terminal or order.expiring:
                continue
            if cmd.kind == "day" and order.time_in_force is TimeInForce.DAY:
                text = "DAY order expired at session end"
            elif (cmd.kind == "gtd" and order.time_in_force is TimeInForce.GTD and order.expire_time is not None
                  and order.expire_time <= cmd.now):
                text = f"GTD order expired at {order.expire_time.isoformat()}"
            else:
                continue
            b.emit(order, ev.ExpiryRequested(order.order_id, text))
            self._cancel_children(order, b)
            self._settle(order, b)

    def _on_market_data(self, cmd: c.MarketData, b: Decision) -> None:
        self.quotes[(cmd.venue, cmd.symbol)] = (cmd.bids[0][0] if cmd.bids else None,
                                                cmd.asks[0][0] if cmd.asks else None)
        on_book = getattr(self.router, "on_book", None)
        if on_book is not None:
            on_book(cmd.venue, cmd.symbol, list(cmd.bids), list(cmd.asks))
        if cmd.trades:
            self.last_price[cmd.symbol] = cmd.trades[-1][0]
            self._elect(cmd.symbol, b)

    def _on_symbol_status(self, cmd: c.VenueSymbolStatus, b: Decision) -> None:
        venues = self.halted_at.setdefault(cmd.symbol, set())
        if cmd.halted and cmd.venue not in venues:
            venues.add(cmd.venue)
            log.warning("%s halted trading in %s%s: no new children there", cmd.venue, cmd.symbol,
                        f" ({cmd.text})" if cmd.text else "")
        elif not cmd.halted and cmd.venue in venues:
            venues.discard(cmd.venue)
            log.info("%s resumed trading in %s", cmd.venue, cmd.symbol)

    def reference_price(self, symbol: str) -> Decimal | None:
        """NBBO mid across venues that quote both sides, else the last trade we saw."""
        live = self.venues_up - self.halted_at[symbol] if self.halted_at.get(symbol) else self.venues_up
        bids = [q[0] for (v, s), q in self.quotes.items() if s == symbol and q[0] is not None and v in live]
        asks = [q[1] for (v, s), q in self.quotes.items() if s == symbol and q[1] is not None and v in live]
        if bids and asks:
            bid, ask = max(bids), min(asks)  # type: ignore[type-var]
            if bid is not None and ask is not None and bid < ask:
                return (bid + ask) / 2
        return self.last_price.get(symbol)

    def _on_market_price(self, cmd: c.MarketPrice, b: Decision) -> None:
        self.last_price[cmd.symbol] = cmd.price
        self._elect(cmd.symbol, b)

    def _elect(self, symbol: str, b: Decision) -> None:
        """Release held stops the last price has traded through."""
        price = self.last_price.get(symbol)
        held = self.held.get(symbol)
        if price is None or not held:
            return
        for order_id in sorted(held):
            order = self.orders[order_id]
            if not order.held or order.is_terminal:
                held.discard(order_id)
                continue
            assert order.stop_px is not None
            if (order.side is Side.BUY and price >= order.stop_px) or (
                order.side is not Side.BUY and price <= order.stop_px
            ):
                held.discard(order_id)
                b.emit(order, ev.OrderTriggered(order_id, price))
                if not self._route_residual(order, b):
                    self._end(order, ev.OrderCanceled(order_id, f"stop elected at {price}: no venue available"), b)

    def _on_session_up(self, cmd: c.ClientSessionUp, b: Decision) -> None:
        self.sessions_up.add(cmd.session)

    def _on_session_down(self, cmd: c.ClientSessionDown, b: Decision) -> None:
        self.sessions_up.discard(cmd.session)
        if cmd.session not in self.config.cancel_on_disconnect:
            return
        for order in list(self.orders.values()):
            if order.session == cmd.session and not order.is_terminal and order.pending is None:
                self._unsolicited_cancel(order, "cancel on disconnect", b)

    # --- venue side --------------------------------------------------------------------------
    def _child_of(self, *ids: str | None) -> tuple[Order, Child] | None:
        for cid in ids:
            if cid and cid in self.by_child:
                order_id, child_id = self.by_child[cid]
                order = self.orders[order_id]
                return order, order.children[child_id]
        return None

    def _on_venue_report(self, r: c.VenueReport, b: Decision) -> None:
        found = self._child_of(r.cl_ord_id, r.orig_cl_ord_id)
        if found is None:
            log.warning("venue %s: report for unknown order %s (exec %s)", r.venue, r.cl_ord_id, r.exec_id)
            return
        order, child = found
        self.suspect.discard(r.venue)  # it answers again
        self._answered(child, r.exec_type)
        handler = _VENUE_HANDLERS.get(r.exec_type)
        if handler is not None:
            handler(self, order, child, r, b)

    def _venue_fill(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        self._on_fill(order, child, r.venue, r.exec_id, r.last_qty, r.last_px, b)

    def _venue_new(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        if child.status is OrdStatus.PENDING_NEW:
            b.emit(order, ev.ChildAcked(order.order_id, child.child_id, r.venue_order_id))

    def _venue_ended(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        if child.done and not child.in_doubt:
            return
        et = r.exec_type
        text = r.text or f"{et.name.lower()} by {r.venue}"
        b.emit(order, ev.ChildDone(order.order_id, child.child_id, et is ExecType.REJECTED, text,
                                   r.exec_restatement_reason, et is ExecType.DONE_FOR_DAY))
        self._settle(order, b)

    def _venue_replaced(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        if not child.amend_id or r.cl_ord_id != child.amend_id:
            # Not the amend we wait for: one we gave up on, or already applied (a resent report).
            log.warning("venue %s: Replaced %s for %s, which has no such amend outstanding", r.venue, r.cl_ord_id,
                        child.child_id)
            return
        b.emit(order, ev.ChildReplaced(order.order_id, child.child_id))
        self._amended(order, b)
        self._settle(order, b)

    def _amend_refused(self, order: Order, child: Child, text: str, b: Decision) -> None:
        b.emit(order, ev.ChildReplaceRefused(order.order_id, child.child_id, text))
        if order.pending is OrdStatus.PENDING_REPLACE and not any(ch.amend_id for ch in order.children.values()):
            self._refuse_pending(order, CxlRejReason.BROKER_OPTION, text, b)

    def _on_fill(self, order: Order, child: Child, venue: str, venue_exec_id: str, last_qty: Decimal,
                 last_px: Decimal, b: Decision) -> None:
        key = (venue, venue_exec_id)
        if key in self.venue_exec_ids:
            log.info("venue %s: duplicate exec %s ignored", venue, venue_exec_id)
            return
        qty = last_qty
        # Room: the child's own rest, and what the parent has not filled nor working at other children
        # (an in-doubt child's quantity may have been routed elsewhere meanwhile).
        others = order.working_child_qty - child.working_qty
        room = ZERO if order.is_terminal else min(child.qty - child.cum_qty, order.order_qty - order.cum_qty - others)
        self.venue_exec_ids.add(key)
        if qty > room:
            # Never pass an overfill to the client: the excess stays with the broker, journaled for an
            # operator (a late fill of an in-doubt child, or the venue's error).
            excess = qty - room
            text = (f"late fill of {child.child_id} in doubt at {venue}" if child.in_doubt
                    else f"{venue} overfilled {child.child_id}")
            log.error("venue %s: exec %s: %s unallocated (%s)", venue, venue_exec_id, excess, text)
            b.events.append(ev.FillUnallocated(order.order_id, child.child_id, venue, venue_exec_id, excess, last_px,
                                               text))
            qty = room
        if qty <= 0:
            return
        exec_id = order.next_exec_id()
        b.emit(order, ev.ChildFilled(order.order_id, child.child_id, venue, venue_exec_id, exec_id, qty, last_px,
                                     _now()))
        self.fills[key] = (order.order_id, child.child_id, exec_id, qty, last_px)
        if self.risk is not None:
            self.risk.on_fill(order, qty, last_px)
        b.outbound.append(report(order, ExecType.TRADE, exec_id=exec_id, last_mkt=venue, text=""))
        self.last_price[order.symbol] = last_px
        self._settle(order, b)
        self._elect(order.symbol, b)

    def _on_bust_or_correct(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        key = (r.venue, r.exec_id)
        if key in self.venue_exec_ids:
            return
        fill = self.fills.get((r.venue, r.exec_ref_id))
        if fill is None:
            if (r.venue, r.exec_ref_id) in self.venue_exec_ids:
                # The execution was busted before (a bust's own ExecID is not kept across a restart):
                # the venue repeats itself, e.g. in answer to our resend request after a takeover.
                log.info("venue %s: %s %s of execution %r already busted: ignored", r.venue, r.exec_type.name,
                         r.exec_id, r.exec_ref_id)
            else:
                log.error("venue %s: %s refers to unknown execution %r", r.venue, r.exec_type.name, r.exec_ref_id)
            return
        self.venue_exec_ids.add(key)
        _, child_id, ref_exec_id, qty, px = fill
        if r.exec_type is ExecType.TRADE_CORRECT and (r.last_qty, r.last_px) == (qty, px):
            # Nothing to correct: the execution stands as this says (a correction repeated after a restart,
            # which does not keep the correction's own ExecID); no report for a change that is none.
            log.info("venue %s: correction %s of execution %r changes nothing: ignored", r.venue, r.exec_id,
                     r.exec_ref_id)
            return
        exec_id = order.next_exec_id()
        was_terminal = order.is_terminal
        if r.exec_type is ExecType.TRADE_CANCEL:
            b.emit(order, ev.FillBusted(order.order_id, child_id, r.venue, r.exec_ref_id, exec_id, ref_exec_id, qty,
                                        px))
            del self.fills[(r.venue, r.exec_ref_id)]
            if self.risk is not None:
                self.risk.on_fill(order, -qty, px)
        else:
            new_qty = min(r.last_qty, qty + order.order_qty - order.cum_qty)  # a correction never overfills
            b.emit(order, ev.FillCorrected(order.order_id, child_id, r.venue, r.exec_ref_id, exec_id, ref_exec_id,
                                           qty, px, new_qty, r.last_px))
            self.fills[(r.venue, r.exec_ref_id)] = (order.order_id, child_id, ref_exec_id, new_qty, r.last_px)
            if self.risk is not None:
                self.risk.on_fill(order, -qty, px)
                self.risk.on_fill(order, new_qty, r.last_px)
        b.outbound.append(report(order, r.exec_type, exec_id=exec_id, exec_ref_id=ref_exec_id, last_mkt=r.venue,
                                 text=r.text, restatement_reason=r.exec_restatement_reason))
        # A bust reopens a filled order: the broker works the residual again (and a GTD order expires again).
        if was_terminal and not order.is_terminal:
            self._watch_expiry(order)
        if not order.is_terminal and order.pending is None and not order.expiring:
            self._route_residual(order, b)

    def _reconcile(self, order: Order, child: Child, r: c.VenueReport, b: Decision) -> None:
        """A venue's status of one of our children (after restart/reconnect): apply what we missed, once."""
        if child.amend_id and r.cl_ord_id == child.amend_id and child.status is OrdStatus.PENDING_REPLACE:
            # The venue names the order by our amend's ClOrdID: it amended it, and its Replaced was lost.
            self._watch.pop(child.child_id, None)
            b.emit(order, ev.ChildReplaced(order.order_id, child.child_id))
            self._amended(order, b)
        open_here = not child.done or child.in_doubt
        if r.ord_status is OrdStatus.REJECTED and r.venue_order_id in ("", "NONE"):
            if open_here:
                b.emit(order, ev.ChildDone(order.order_id, child.child_id, True,
                                           f"unknown at {r.venue} on reconciliation"))
                self._settle(order, b)
            return
        missed = r.cum_qty - child.cum_qty
        if missed > 0:
            px = ((r.cum_qty * r.avg_px - child.notional) / missed).quantize(Decimal("0.000001"))
            # The synthetic exec id is stable, so a repeated reconciliation applies it once.
            self._on_fill(order, child, r.venue, f"recon:{child.child_id}:{r.cum_qty}", missed, px, b)
        ended = (OrdStatus.CANCELED, OrdStatus.EXPIRED, OrdStatus.DONE_FOR_DAY, OrdStatus.REJECTED, OrdStatus.FILLED)
        if (not child.done and r.ord_status in ended[:-1]) or (child.in_doubt and r.ord_status in ended):
            b.emit(order, ev.ChildDone(order.order_id, child.child_id, r.ord_status is OrdStatus.REJECTED,
                                       r.text or f"{r.ord_status.name.lower()} at {r.venue} (reconciled)",
                                       done_for_day=r.ord_status is OrdStatus.DONE_FOR_DAY))
            self._settle(order, b)
        elif child.in_doubt and not child.cancel_id and order.side is not None:
            # Still working at a venue that kept it: its quantity was routed elsewhere, so cancel it there.
            self._cancel_child(order, child, b)

    def _on_venue_cancel_reject(self, r: c.VenueCancelReject, b: Decision) -> None:
        found = self._child_of(r.cl_ord_id, r.orig_cl_ord_id)
        if found is None:
            return
        order, child = found
        self.suspect.discard(r.venue)
        answers_amend = bool(child.amend_id) and r.cl_ord_id == child.amend_id
        if not (child.done or answers_amend or child.cancel_id):
            # It answers no request of ours that is pending (a repeat, or a request we never sent): it settles
            # nothing. Taken for the refusal of the child's pending amend, it refused the client's replace
            # while the amend still stood at the venue, whose acceptance then left the child larger than
            # its order, or priced through its limit (tests/oms/test_engine_properties.py found both).
            log.warning("venue %s: cancel reject %s for %s answers no pending request of ours: ignored (%s)",
                        r.venue, r.cl_ord_id, child.child_id, r.text)
            return
        self._watch.pop(child.child_id, None)
        if child.done:
            return
        if answers_amend:
            self._amend_refused(order, child, f"{r.venue} refused replace: {r.text}", b)
            return
        b.emit(order, ev.ChildCancelRefused(order.order_id, child.child_id, r.text))
        if order.pending is not None and not any(ch.cancel_id and not ch.done for ch in order.children.values()):
            self._refuse_pending(order, CxlRejReason.BROKER_OPTION, f"{r.venue} refused cancel: {r.text}", b)

    def _refuse_pending(self, order: Order, reason: CxlRejReason, text: str, b: Decision) -> None:
        cl_ord_id = order.pending_cl_ord_id or ""
        response_to = (CxlRejResponseTo.REPLACE if order.pending is OrdStatus.PENDING_REPLACE
                       else CxlRejResponseTo.CANCEL)
        b.emit(order, ev.CancelRefused(order.order_id, cl_ord_id, text))
        if cl_ord_id:
            b.outbound.append(CancelReject(order.session, order.order_id, cl_ord_id, order.cl_ord_id,
                                           order.ord_status, response_to, reason, text))

    def _end(self, order: Order, event: ev.OrderCanceled | ev.OrderExpired, b: Decision,
             orig_cl_ord_id: str | None = None) -> None:
        """Cancel or expire what is left of an order: the event, risk released, the client told.
        `orig_cl_ord_id`: the ClOrdID before a client's cancel took effect (sent only if it changed)."""
        b.emit(order, event)
        if self.risk is not None:
            self.risk.on_done(order)
        exec_type = ExecType.EXPIRED if isinstance(event, ev.OrderExpired) else ExecType.CANCELED
        orig = orig_cl_ord_id if orig_cl_ord_id is not None and orig_cl_ord_id != order.cl_ord_id else None
        reason = event.restatement_reason if isinstance(event, ev.OrderCanceled) else None
        b.outbound.append(report(order, exec_type, orig_cl_ord_id=orig, restatement_reason=reason))

    def _done_for_day(self, order: Order, text: str, b: Decision) -> None:
        """The venue is done for the day with what nothing else works: the client sees DoneForDay. A DAY
        order ends so (App D A.1.b: LeavesQty 0); a GT order stays open with its LeavesQty (App D H.1) and
        is worked again at the next session start (_on_renew)."""
        stays_open = order.time_in_force in GOOD_TILL
        b.emit(order, ev.OrderDoneForDay(order.order_id, text, stays_open))
        if not stays_open and self.risk is not None:
            self.risk.on_done(order)
        b.outbound.append(report(order, ExecType.DONE_FOR_DAY))

    def _on_renew(self, cmd: c.RenewOrders, b: Decision) -> None:
        for order in list(self.orders.values()):
            if order.done_for_day and not order.is_terminal:
                self._renew(order, b)

    def _renew(self, order: Order, b: Decision) -> None:
        if not self._routable(order.symbol):
            # Venues log on around the session start too: renew it when one that lists it does.
            self._renew_waiting.add(order.order_id)
            log.warning("GT renewal of %s waits: no venue for %s is up", order.order_id, order.symbol)
            return
        self._renew_waiting.discard(order.order_id)
        b.emit(order, ev.OrderRenewed(order.order_id))
        b.outbound.append(report(order, ExecType.RESTATED, text="GT renewal",
                                 restatement_reason=ExecRestatementReason.GT_RENEWAL))
        if not self._route_residual(order, b):
            self._end(order, ev.OrderCanceled(order.order_id, "GT renewal: no venue available"), b)

    def _settle(self, order: Order, b: Decision) -> None:
        """After any change to an order or its children: finish what can be finished."""
        if order.status is OrdStatus.FILLED:
            if order.pending is not None:
                self._refuse_pending(order, CxlRejReason.TOO_LATE_TO_CANCEL, "order is filled", b)
            return
        if (
            order.pending is None and not order.expiring and not order.held and not order.is_terminal
            and order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK) and order.unrouted_qty > 0
            and order.working_child_qty > 0
            and any(ch.time_in_force is TimeInForce.IOC for ch in order.children.values())
            and not any(ch.time_in_force is TimeInForce.IOC and not ch.done for ch in order.children.values())
            and self._reroutes.get(order.order_id, 0) < MAX_REROUTES
        ):
            # Some IOC children came back short while others rest: route the missed quantity again.
            self._reroutes[order.order_id] = self._reroutes.get(order.order_id, 0) + 1
            self._route_residual(order, b)
        if order.is_terminal or order.working_child_qty > 0:
            return
        if order.pending is OrdStatus.PENDING_CANCEL:
            orig = order.cl_ord_id
            text = order.text if not order.pending_cl_ord_id else "canceled at client request"
            self._end(order, ev.OrderCanceled(order.order_id, text), b, orig_cl_ord_id=orig)
            return
        if order.pending is OrdStatus.PENDING_REPLACE:
            before = dataclasses.replace(order, children={})
            b.emit(order, ev.OrderReplaced(order.order_id))
            if self.risk is not None:
                self.risk.on_replaced(before, order)
            b.outbound.append(report(order, ExecType.REPLACED, orig_cl_ord_id=order.orig_cl_ord_id))
            if not order.is_terminal and not self._route_residual(order, b):
                self._end(order, ev.OrderCanceled(order.order_id, "replaced, but no venue available"), b)
            return
        if order.expiring:
            self._end(order, ev.OrderExpired(order.order_id, order.text), b)
            return
        if order.held or order.done_for_day or order.leaves_qty <= 0 or any(
                not ch.done for ch in order.children.values()):
            return  # (done for the day: resting until renewed)
        # Nothing works at any venue and nobody asked for it. If the router's IOC children came back
        # short (or were never sent), work the rest again against the refreshed book; if a venue ended
        # a resting child or rejected one, the rest goes back to the client with the venue's reason.
        ended = [ch for ch in order.children.values() if ch.status is not OrdStatus.FILLED]
        last = max(ended, key=lambda ch: int(ch.child_id.rsplit(".", 1)[1]), default=None)
        if last is not None and last.status is OrdStatus.DONE_FOR_DAY and order.time_in_force not in (
                TimeInForce.IOC, TimeInForce.FOK):
            self._done_for_day(order, f"{last.venue}: {last.text}", b)
            return
        if order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK) and (
            last is None or (last.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
                             and last.status is not OrdStatus.REJECTED)
        ) and self._reroutes.get(order.order_id, 0) < MAX_REROUTES:
            self._reroutes[order.order_id] = self._reroutes.get(order.order_id, 0) + 1
            if self._route_residual(order, b) and order.working_child_qty > 0:
                return
        reason = None
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            text = "IOC remainder canceled" if order.time_in_force is TimeInForce.IOC else "FOK not filled"
        elif last is None:
            text = "no venue available"
        else:
            # The venue ended it on its own: its words and its ExecRestatementReason(378) reach the client.
            text, reason = f"{last.venue}: {last.text}", last.restatement_reason
        self._end(order, ev.OrderCanceled(order.order_id, text, reason), b)

    # --- operators ------------------------------------------------------------------------------
    def _on_set_state(self, cmd: c.SetTradingState, b: Decision) -> None:
        if self.risk is None:
            return _reply(cmd.reply, b, "risk checks are not enabled")
        try:
            before, after = self.risk.set_state(cmd.scope, cmd.state, cmd.user, cmd.reason)
        except ValueError as exc:
            return _reply(cmd.reply, b, str(exc))
        b.events.append(ev.TradingStateChanged(cmd.scope, before, after, cmd.user, cmd.reason, _now()))
        canceled = 0
        if cmd.cancel_open and after == "HALTED":
            kind, _, name = cmd.scope.partition(":")
            for order in list(self.orders.values()):
                if order.is_terminal or order.pending is not None:
                    continue
                if kind == "firm" or (kind == "account" and order.account == name) or (
                    kind == "session" and order.session == name
                ):
                    self._unsolicited_cancel(order, f"trading halted: {cmd.reason}", b)
                    canceled += 1
        log.warning("%s set %s %s -> %s (%s); %d orders canceled", cmd.user, cmd.scope, before, after, cmd.reason,
                    canceled)
        _reply(cmd.reply, b, (before, after, canceled))

    def _on_call(self, cmd: c.EngineCall, b: Decision) -> None:
        try:
            result = cmd.fn()
        except Exception as exc:  # handed back to the caller, not raised in the engine
            result = exc
        _reply(cmd.reply, b, result)

    def _on_set_limit(self, cmd: c.SetRiskLimit, b: Decision) -> None:
        if self.risk is None:
            return _reply(cmd.reply, b, "risk checks are not enabled")
        try:
            before, after = self.risk.set_limit(cmd.account, cmd.name, cmd.value)
        except ValueError as exc:
            return _reply(cmd.reply, b, str(exc))
        b.events.append(ev.RiskLimitChanged(cmd.account, cmd.name, before, after, cmd.user, _now()))
        _reply(cmd.reply, b, (before, after))

    def _on_venue_up(self, cmd: c.VenueSessionUp, b: Decision) -> None:
        self.venues_up.add(cmd.venue)
        self._down_since.pop(cmd.venue, None)
        self.suspect.discard(cmd.venue)
        self._ask_venue_status(cmd.venue, b)
        for order_id in sorted(self._renew_waiting):
            order = self.orders.get(order_id)
            if order is None or not order.done_for_day or order.is_terminal:
                self._renew_waiting.discard(order_id)
            elif self._routable(order.symbol):
                self._renew(order, b)

    def _on_reconcile(self, cmd: c.ReconcileVenue, b: Decision) -> None:
        self._ask_venue_status(cmd.venue, b)

    def _ask_venue_status(self, venue: str, b: Decision) -> None:
        # Whatever the venue said while we were away (or before a crash) comes back as status reports.
        for order in self.orders.values():
            if order.side is None:
                continue
            for child in order.children.values():
                # In-doubt children too, even of finished parents: their fate is still the venue's to tell.
                if child.venue == venue and (child.in_doubt or not child.done and not order.is_terminal):
                    b.outbound.append(VenueStatusRequest(venue, child.venue_id, order.symbol, order.side))
                    if child.status is OrdStatus.PENDING_NEW and child.child_id not in self._watch:
                        # Never acknowledged (e.g. sent just before a restart): this request is the last
                        # chance the ack timeout gives, then the child is in doubt.
                        self._watch[child.child_id] = _Watch("new", self.clock(), stage=1)
                    elif child.amend_id and child.child_id not in self._watch:
                        # An amend unanswered before a restart: the venue's answer (or its status naming
                        # the amend's ClOrdID) still applies; without either, the client's replace is refused.
                        self._watch[child.child_id] = _Watch("amend", self.clock(), stage=1)

    def _on_venue_down(self, cmd: c.VenueSessionDown, b: Decision) -> None:
        self.venues_up.discard(cmd.venue)
        self._down_since.setdefault(cmd.venue, self.clock())
        for key in [k for k in self.quotes if k[0] == cmd.venue]:
            del self.quotes[key]
        for halted in self.halted_at.values():  # it tells us again when it is back (its SecurityStatus)
            halted.discard(cmd.venue)
        on_down = getattr(self.router, "on_venue_down", None)
        if on_down is not None:
            on_down(cmd.venue)

    # --- venue faults: a venue that dropped, or stopped answering ---------------------------------
    def _routable(self, symbol: str) -> frozenset[str]:
        """Venues new children in `symbol` may go to: logged on, answering, and not halted in it."""
        up = self.venues_up - self.suspect if self.suspect else self.venues_up
        halted = self.halted_at.get(symbol)
        return frozenset(up - halted if halted else up)

    def _answered(self, child: Child, et: ExecType) -> None:
        now = self._heard[child.venue] = self.clock()
        watch = self._watch.get(child.child_id)
        if watch is not None and (watch.kind == "new" or et in _ENDING
                                  or (watch.kind == "amend" and et is ExecType.REPLACED)):
            del self._watch[child.child_id]
            if watch.kind == "new" and watch.stage == 0:  # answered without being asked: a true round trip
                times = self.venue_ack_s.get(child.venue)
                if times is None:
                    times = self.venue_ack_s[child.venue] = deque(maxlen=100)
                times.append(now - watch.since)

    def _on_tick(self, cmd: c.Tick, b: Decision) -> None:
        for venue, since in list(self._down_since.items()):
            if cmd.now - since >= self.config.venue_down_grace_s:
                del self._down_since[venue]
                if venue not in self.config.venues_keep_orders:
                    self._venue_gone(venue, b)
        timeout = self.config.venue_ack_timeout_s
        asked: dict[str, int] = {}
        for child_id, watch in list(self._watch.items()):
            if cmd.now - watch.since < timeout:
                continue
            found = self._child_of(child_id)
            if (found is not None and cmd.now - self._heard.get(found[1].venue, -math.inf) < timeout
                    and cmd.now - watch.since < BUSY_VENUE_WAIT * timeout):
                # The venue answered others within the timeout: it works through a backlog (a mass cancel
                # sends thousands at once). Asking it about each request would double that backlog and
                # end in orders given up on while their answers are on the way; it gets longer instead.
                continue
            if found is None or found[1].done or (watch.kind == "cancel" and not found[1].cancel_id) or (
                    watch.kind == "amend" and not found[1].amend_id):
                del self._watch[child_id]
                continue
            order, child = found
            if child.venue not in self.venues_up:
                continue  # a dropped venue: the grace period decides
            assert order.side is not None
            if watch.stage == 0:
                # Ask before giving up: only the answer may have been lost.
                if asked.get(child.venue, 0) >= STATUS_REQUESTS_PER_TICK:
                    continue  # asked at a later tick
                asked[child.venue] = asked.get(child.venue, 0) + 1
                watch.stage, watch.since = 1, cmd.now
                b.outbound.append(VenueStatusRequest(child.venue, child.venue_id, order.symbol, order.side))
                continue
            del self._watch[child_id]
            text = f"no answer from {child.venue}"
            if child.venue not in self.suspect:
                log.error("venue %s does not answer: no new orders go there until it does", child.venue)
                self.suspect.add(child.venue)
                self._probe_at[child.venue] = cmd.now
            _GAVE_UP[watch.kind](self, order, child, text, b)
        for venue in list(self.suspect):
            if cmd.now - self._probe_at.get(venue, 0.0) >= timeout:
                self._probe_at[venue] = cmd.now
                self._probe(venue, b)

    def _new_unanswered(self, order: Order, child: Child, text: str, b: Decision) -> None:
        self._in_doubt(order, [child], text, b)

    def _cancel_unanswered(self, order: Order, child: Child, text: str, b: Decision) -> None:
        b.emit(order, ev.ChildCancelRefused(order.order_id, child.child_id, text))
        if order.pending is not None and not any(ch.cancel_id and not ch.done for ch in order.children.values()):
            self._refuse_pending(order, CxlRejReason.BROKER_OPTION, f"{text} to the cancel", b)

    def _amend_unanswered(self, order: Order, child: Child, text: str, b: Decision) -> None:
        # As for a cancel: the order keeps working on its old terms; a late Replaced no longer applies.
        self._amend_refused(order, child, f"{text} to the replace", b)

    def _probe(self, venue: str, b: Decision) -> None:
        """Ask a silent venue about one of its orders: any answer clears the suspicion."""
        for order in self.orders.values():
            for child in order.children.values():
                if child.venue == venue and order.side is not None and (child.in_doubt or not child.done):
                    b.outbound.append(VenueStatusRequest(venue, child.venue_id, order.symbol, order.side))
                    return
        self.suspect.discard(venue)  # nothing of ours is there: the next order will tell

    def _venue_gone(self, venue: str, b: Decision) -> None:
        log.warning("venue %s still down after %.1fs: its open children are in doubt, their quantity is "
                    "routed elsewhere", venue, self.config.venue_down_grace_s)
        for order in list(self.orders.values()):
            if order.is_terminal:
                continue
            stranded = [ch for ch in order.children.values() if ch.venue == venue and not ch.done]
            if stranded:
                self._in_doubt(order, stranded, f"{venue} down", b)

    def _in_doubt(self, order: Order, children: list[Child], text: str, b: Decision) -> None:
        """Presume these children canceled (their venue went away) and finish or re-route the parent."""
        for child in children:
            self._watch.pop(child.child_id, None)
            b.emit(order, ev.ChildInDoubt(order.order_id, child.child_id, text))
        if (order.pending is None and not order.expiring and not order.held and not order.done_for_day
                and order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK)):
            self._route_residual(order, b)
            if order.working_child_qty == 0 and not order.is_terminal:
                self._end(order, ev.OrderCanceled(order.order_id, f"{text}, no other venue for the rest"), b)
                return
        self._settle(order, b)


# The dispatch tables (a table, not an isinstance chain).
_HANDLERS: dict[type, Callable[[Decider, Any, Decision], None]] = {
    c.NewOrder: Decider._on_new,
    c.InvalidOrder: Decider._on_invalid,
    c.CancelOrder: Decider._on_cancel,
    c.ReplaceOrder: Decider._on_replace,
    c.AdminCancel: Decider._on_admin_cancel,
    c.StatusRequest: Decider._on_status,
    c.MassCancel: Decider._on_mass_cancel,
    c.MassStatus: Decider._on_mass_status,
    c.ExpireOrders: Decider._on_expire,
    c.RenewOrders: Decider._on_renew,
    c.MarketPrice: Decider._on_market_price,
    c.MarketData: Decider._on_market_data,
    c.ReconcileVenue: Decider._on_reconcile,
    c.ClientSessionUp: Decider._on_session_up,
    c.ClientSessionDown: Decider._on_session_down,
    c.VenueReport: Decider._on_venue_report,
    c.VenueCancelReject: Decider._on_venue_cancel_reject,
    c.VenueSessionUp: Decider._on_venue_up,
    c.VenueSessionDown: Decider._on_venue_down,
    c.VenueSymbolStatus: Decider._on_symbol_status,
    c.Tick: Decider._on_tick,
    c.SetTradingState: Decider._on_set_state,
    c.SetRiskLimit: Decider._on_set_limit,
    c.EngineCall: Decider._on_call,
}

_VENUE_HANDLERS: dict[ExecType, Callable[[Decider, Order, Child, c.VenueReport, Decision], None]] = {
    ExecType.TRADE: Decider._venue_fill,
    ExecType.PARTIAL_FILL: Decider._venue_fill,
    ExecType.FILL: Decider._venue_fill,
    ExecType.TRADE_CANCEL: Decider._on_bust_or_correct,
    ExecType.TRADE_CORRECT: Decider._on_bust_or_correct,
    ExecType.ORDER_STATUS: Decider._reconcile,
    ExecType.NEW: Decider._venue_new,
    ExecType.CANCELED: Decider._venue_ended,
    ExecType.EXPIRED: Decider._venue_ended,
    ExecType.DONE_FOR_DAY: Decider._venue_ended,
    ExecType.REJECTED: Decider._venue_ended,
    ExecType.REPLACED: Decider._venue_replaced,
}

_GAVE_UP: dict[str, Callable[[Decider, Order, Child, str, Decision], None]] = {
    "new": Decider._new_unanswered,
    "cancel": Decider._cancel_unanswered,
    "amend": Decider._amend_unanswered,
}


def _reply(reply: Callable[[Any], None] | None, b: Decision, value: Any) -> None:
    if reply is not None:
        b.replies.append(lambda: reply(value))


def _refusal(
    session: str,
    cl_ord_id: str,
    symbol: str,
    side: str,
    qty: Decimal,
    reason: OrdRejReason,
    text: str,
    exec_type: ExecType = ExecType.REJECTED,
) -> ExecutionReport:
    """A Rejected report for a request that never became an order."""
    return ExecutionReport(
        session=session, order_id="NONE", cl_ord_id=cl_ord_id, orig_cl_ord_id=None,
        exec_id=f"R-{time.time_ns()}", exec_type=exec_type, ord_status=OrdStatus.REJECTED, account="",
        symbol=symbol, side=side, ord_type=None, time_in_force=None, order_qty=qty, price=None,
        last_qty=ZERO, last_px=ZERO, leaves_qty=ZERO, cum_qty=ZERO, avg_px=ZERO, text=text,
        ord_rej_reason=reason,
    )
