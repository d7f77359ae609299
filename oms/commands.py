"""Commands: what clients, venues and operators ask of the engine (imperative, immutable).

QuickFIX callbacks decode a message into one of these and put it on the engine's queue; nothing
mutable crosses that boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from oms.enums import ExecType, OrdRejReason, OrdStatus, OrdType, Side, TimeInForce
from oms.fastinit import fast_init_all


@dataclass(frozen=True, slots=True)
class NewOrder:
    session: str
    cl_ord_id: str
    account: str
    symbol: str
    side: Side
    ord_type: OrdType
    order_qty: Decimal
    price: Decimal | None = None
    stop_px: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    expire_time: datetime | None = None
    max_floor: Decimal | None = None
    ex_destination: str | None = None
    expire_date: str | None = None
    target_strategy: str | None = None
    # PossResend(97)=Y or PossDupFlag(43)=Y: the client may have sent this request before (a resend after a
    # reconnect or a takeover); one whose ClOrdID we already have is answered with its order's status
    poss_resend: bool = False


@dataclass(frozen=True, slots=True)
class InvalidOrder:
    """A NewOrderSingle that parsed as FIX but carries a value we do not support."""

    session: str
    cl_ord_id: str
    symbol: str
    side: str
    order_qty: str
    reason: OrdRejReason
    text: str


@dataclass(frozen=True, slots=True)
class CancelOrder:
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str = ""
    side: str = ""
    order_id: str | None = None
    poss_resend: bool = False  # as NewOrder's


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    order_qty: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    order_id: str | None = None
    poss_resend: bool = False  # as NewOrder's


@dataclass(frozen=True, slots=True)
class MassCancel:
    """OrderMassCancelRequest (q): request_type 1 = by symbol, 7 = all of the session's orders."""

    session: str
    cl_ord_id: str
    request_type: str
    symbol: str = ""
    side: str = ""


@dataclass(frozen=True, slots=True)
class MassStatus:
    """OrderMassStatusRequest (AF): request_type 1 = by symbol, 7 = all of the session's orders."""

    session: str
    mass_status_req_id: str
    request_type: str
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class ExpireOrders:
    """Scheduled: expire DAY orders (at session end) or GTD orders whose ExpireTime has passed."""

    kind: str  # "day" | "gtd"
    now: datetime


@dataclass(frozen=True, slots=True)
class RenewOrders:
    """Scheduled at the session start: GT orders their venue ended for the day are worked again."""

    now: datetime


@dataclass(frozen=True, slots=True)
class MarketPrice:
    """A trade or quote price for a symbol: elects held stop orders."""

    symbol: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class MarketData:
    """One venue's book for a symbol after a change (best first), and the trades since the last one."""

    venue: str
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    trades: tuple[tuple[Decimal, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class ReconcileVenue:
    """Ask a venue for the status of every open child (after a restart or a reconnect)."""

    venue: str


@dataclass(frozen=True, slots=True)
class StatusRequest:
    session: str
    cl_ord_id: str
    order_id: str | None = None
    # Echoed on the answer for an unknown order: Symbol and Side are required on every ExecutionReport.
    symbol: str = ""
    side: str = ""


@dataclass(frozen=True, slots=True)
class ClientSessionUp:
    session: str


@dataclass(frozen=True, slots=True)
class ClientSessionDown:
    session: str


@dataclass(frozen=True, slots=True)
class VenueReport:
    """An ExecutionReport received from a venue for one of our child orders."""

    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    venue_order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    last_qty: Decimal = Decimal(0)
    last_px: Decimal = Decimal(0)
    cum_qty: Decimal = Decimal(0)
    leaves_qty: Decimal = Decimal(0)
    avg_px: Decimal = Decimal(0)
    exec_ref_id: str = ""
    text: str = ""
    exec_restatement_reason: int | None = None  # 378 as the venue sent it (passed on to the client)


@dataclass(frozen=True, slots=True)
class VenueCancelReject:
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: OrdStatus | None
    text: str = ""


@dataclass(frozen=True, slots=True)
class VenueSessionUp:
    venue: str


@dataclass(frozen=True, slots=True)
class VenueSessionDown:
    venue: str


@dataclass(frozen=True, slots=True)
class VenueSymbolStatus:
    """A venue halted or resumed trading in a symbol (its SecurityStatus 35=f): no children go there
    for that symbol while it is halted."""

    venue: str
    symbol: str
    halted: bool
    text: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """The engine's clock (time.monotonic() seconds), submitted a few times a second by its ticker:
    venue timeouts are decided on the engine thread like everything else, and tests drive it."""

    now: float


@dataclass(frozen=True, slots=True)
class SetTradingState:
    """Kill switch and friends: scope is "firm", "account:ACC" or "session:COMPID"."""

    scope: str
    state: str  # ACTIVE | REDUCING | HALTED
    user: str
    reason: str
    cancel_open: bool = False
    reply: Any = None  # called with (before, after) or an error text, from the engine thread


@dataclass(frozen=True, slots=True)
class SetRiskLimit:
    account: str
    name: str
    value: str
    user: str
    reply: Any = None


@dataclass(frozen=True, slots=True)
class EngineCall:
    """Run `fn` on the engine thread, after everything submitted before it; `reply` gets its result (or
    the exception it raised) once the batch is committed. How the admin socket reads order state."""

    fn: Any
    reply: Any


@dataclass(frozen=True, slots=True)
class AdminCancel:
    """An operator cancel of one order (by OrderID), as if the client had asked."""

    order_id: str
    user: str
    reason: str = "canceled by operator"


Command = (
    NewOrder
    | InvalidOrder
    | CancelOrder
    | ReplaceOrder
    | StatusRequest
    | MassCancel
    | MassStatus
    | ExpireOrders
    | RenewOrders
    | MarketPrice
    | MarketData
    | ReconcileVenue
    | ClientSessionUp
    | ClientSessionDown
    | VenueReport
    | VenueCancelReject
    | VenueSessionUp
    | VenueSessionDown
    | VenueSymbolStatus
    | Tick
    | AdminCancel
    | SetTradingState
    | SetRiskLimit
    | EngineCall
)
fast_init_all(Command.__args__)  # built for every message: see oms.fastinit
