"""Events: what happened (past tense, immutable). The journal stores them; aggregates change only by them.

Every event names the order it belongs to, so replaying the journal per order rebuilds the state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from oms.enums import OrdRejReason, OrdType, Side, TimeInForce
from oms.fastinit import fast_init_all


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    order_id: str
    seq: int
    session: str
    account: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    order_qty: Decimal
    price: Decimal | None
    stop_px: Decimal | None
    ts: datetime
    expire_time: datetime | None = None
    max_floor: Decimal | None = None
    ex_destination: str | None = None
    held: bool = False  # a stop the broker holds until the market trades through StopPx
    target_strategy: str | None = None
    arrival_mid: Decimal | None = None  # NBBO mid when the order arrived (for TCA)


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A held stop order elected by a market price; from now on it is routed like a market/limit order."""

    order_id: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """A client order refused before acceptance: it still gets an order row, so the blotter shows it."""

    order_id: str
    seq: int
    session: str
    account: str
    cl_ord_id: str
    symbol: str
    side: Side | None
    ord_type: OrdType | None
    order_qty: Decimal
    price: Decimal | None
    reason: OrdRejReason
    text: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class ChildRouted:
    order_id: str
    child_id: str
    venue: str
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    time_in_force: TimeInForce


@dataclass(frozen=True, slots=True)
class ChildAcked:
    order_id: str
    child_id: str
    venue_order_id: str


@dataclass(frozen=True, slots=True)
class ChildFilled:
    """A venue fill, applied once: (venue, venue_exec_id) is unique in the journal."""

    order_id: str
    child_id: str
    venue: str
    venue_exec_id: str
    exec_id: str
    last_qty: Decimal
    last_px: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class FillBusted:
    """The venue cancelled one of its executions (ExecType TradeCancel): the fill is taken back."""

    order_id: str
    child_id: str
    venue: str
    venue_exec_id: str  # the venue's id of the busted execution
    exec_id: str  # our ExecID of this correction report
    ref_exec_id: str  # our ExecID of the fill being busted
    qty: Decimal
    px: Decimal


@dataclass(frozen=True, slots=True)
class FillCorrected:
    """The venue corrected one of its executions (ExecType TradeCorrect): quantity and/or price change."""

    order_id: str
    child_id: str
    venue: str
    venue_exec_id: str
    exec_id: str
    ref_exec_id: str
    old_qty: Decimal
    old_px: Decimal
    new_qty: Decimal
    new_px: Decimal


@dataclass(frozen=True, slots=True)
class ChildCancelRequested:
    order_id: str
    child_id: str
    cancel_id: str


@dataclass(frozen=True, slots=True)
class ChildCancelRefused:
    order_id: str
    child_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ChildReplaceRequested:
    """The new terms of a client's replace go to the child's venue as an amend (OrderCancelReplaceRequest,
    ClOrdID `amend_id`): the venue keeps the order, and its queue priority where its rules allow."""

    order_id: str
    child_id: str
    amend_id: str
    qty: Decimal  # the child's new OrderQty (its CumQty included)
    price: Decimal | None


@dataclass(frozen=True, slots=True)
class ChildReplaced:
    """The venue confirmed the amend (ExecType Replaced): the child works the terms it asked for, under
    the amend's ClOrdID."""

    order_id: str
    child_id: str


@dataclass(frozen=True, slots=True)
class ChildReplaceRefused:
    """The venue refused the amend (OrderCancelReject), or never answered it: the child works on as it was."""

    order_id: str
    child_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ChildDone:
    """The venue ended the child (canceled, expired, rejected, done for the day): its unfilled part is no
    longer working."""

    order_id: str
    child_id: str
    rejected: bool
    text: str
    restatement_reason: int | None = None  # the venue's ExecRestatementReason(378), passed on to the client
    done_for_day: bool = False  # the venue's DoneForDay (ExecType 3), not a cancel

@dataclass(frozen=True, slots=True)
class ChildInDoubt:
    """The venue went away (session down past the grace period, or no answer to a new order): the
    child's open quantity is presumed canceled - it no longer counts as working, so the parent's rest
    can be routed elsewhere - until the venue's own status resolves it (ChildDone, or late fills)."""

    order_id: str
    child_id: str
    text: str


@dataclass(frozen=True, slots=True)
class FillUnallocated:
    """A venue fill that arrived for an in-doubt child after its quantity had been routed elsewhere (or
    the parent had ended): passing it on would overfill the client, so it stays with the broker (the
    error account) and an operator resolves it. Journaled so it is never lost or applied twice."""

    order_id: str
    child_id: str
    venue: str
    venue_exec_id: str
    qty: Decimal
    px: Decimal
    text: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    order_id: str
    session: str
    cl_ord_id: str  # empty for an operator's cancel
    text: str = ""


@dataclass(frozen=True, slots=True)
class ReplaceRequested:
    order_id: str
    session: str
    cl_ord_id: str
    order_qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    time_in_force: TimeInForce


@dataclass(frozen=True, slots=True)
class OrderReplaced:
    """The pending replace took effect: new ClOrdID, quantity, price."""

    order_id: str


@dataclass(frozen=True, slots=True)
class CancelRefused:
    """A pending cancel or replace was refused: the order goes on as before."""

    order_id: str
    cl_ord_id: str
    text: str


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A client request refused without touching any order (duplicate ClOrdID, unknown order...)."""

    order_id: str | None
    session: str
    cl_ord_id: str
    msg_type: str
    text: str


@dataclass(frozen=True, slots=True)
class TcaRecorded:
    """Transaction cost analysis of a finished parent (sor.tca.ParentTCA.as_dict)."""

    order_id: str
    figures: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """An operator moved a scope (firm, account:X, session:Y) to ACTIVE/REDUCING/HALTED."""

    scope: str
    before: str
    after: str
    who: str
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class RiskLimitChanged:
    account: str  # "*" for firm-wide settings and defaults
    name: str
    before: str
    after: str
    who: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    order_id: str
    text: str
    restatement_reason: int | None = None  # a venue's 378 when its unsolicited cancel ended the order


@dataclass(frozen=True, slots=True)
class ExpiryRequested:
    """The broker expires the order (DAY at session end, GTD at ExpireTime): children are canceled first."""

    order_id: str
    text: str


@dataclass(frozen=True, slots=True)
class OrderExpired:
    order_id: str
    text: str


@dataclass(frozen=True, slots=True)
class OrderDoneForDay:
    """The venue ended the order's work for the day (its DoneForDay) and nothing else works it. A DAY
    order ends so (App D A.1.b); a GT order (`stays_open`) stays open with its LeavesQty, reported
    DoneForDay, until OrderRenewed at the next session start (App D H.1)."""

    order_id: str
    text: str
    stays_open: bool


@dataclass(frozen=True, slots=True)
class OrderRenewed:
    """A GT order done for the day is worked again at the session start (ExecType Restated, 378=1)."""

    order_id: str


Event = (
    OrderAccepted
    | OrderTriggered
    | OrderRejected
    | ChildRouted
    | ChildAcked
    | ChildFilled
    | FillBusted
    | FillCorrected
    | ChildCancelRequested
    | ChildCancelRefused
    | ChildReplaceRequested
    | ChildReplaced
    | ChildReplaceRefused
    | ChildDone
    | ChildInDoubt
    | FillUnallocated
    | CancelRequested
    | ReplaceRequested
    | OrderReplaced
    | CancelRefused
    | RequestRefused
    | TcaRecorded
    | TradingStateChanged
    | RiskLimitChanged
    | OrderCanceled
    | ExpiryRequested
    | OrderExpired
    | OrderDoneForDay
    | OrderRenewed
)

EVENT_TYPES: dict[str, type] = {t.__name__: t for t in Event.__args__}  # type: ignore[attr-defined]
fast_init_all(EVENT_TYPES.values())  # built on every batch: see oms.fastinit


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_payload(event: Event) -> dict[str, Any]:
    """The event as JSON-safe data (exact decimals as strings, enums as FIX values)."""
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def from_payload(kind: str, payload: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[kind]
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, raw in payload.items():
        hint = str(hints[name])
        if raw is None:
            values[name] = None
        elif hint == "bool":
            values[name] = bool(raw)
        elif "Decimal" in hint:
            values[name] = Decimal(raw)
        elif "datetime" in hint:
            values[name] = datetime.fromisoformat(raw)
        elif "OrdRejReason" in hint:
            values[name] = OrdRejReason(raw)
        elif "Side" in hint:
            values[name] = Side(raw)
        elif "OrdType" in hint:
            values[name] = OrdType(raw)
        elif "TimeInForce" in hint:
            values[name] = TimeInForce(raw)
        else:
            values[name] = raw
    return cls(**values)  # type: ignore[no-any-return]
