"""Outbound messages as plain data: what the engine wants sent. The codec turns them into FIX."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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
from oms.fastinit import fast_init_all
from oms.model import Child, Order


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    session: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    account: str
    symbol: str
    side: str  # the FIX value as the client sent it, so even a refused odd value is echoed back
    ord_type: OrdType | None
    time_in_force: TimeInForce | None
    order_qty: Decimal
    price: Decimal | None
    last_qty: Decimal
    last_px: Decimal
    leaves_qty: Decimal
    cum_qty: Decimal
    avg_px: Decimal
    text: str = ""
    ord_rej_reason: OrdRejReason | None = None
    last_mkt: str = ""
    stop_px: Decimal | None = None
    exec_ref_id: str = ""
    mass_status_req_id: str = ""
    tot_num_reports: int | None = None
    last_rpt_requested: bool = False
    poss_resend: bool = False
    # ExecRestatementReason(378): on a Restated report, or a venue's reason passed on (unsolicited cancel,
    # bust, correction). Last, with a default: journal records pickled before it load unchanged.
    exec_restatement_reason: int | None = None


@dataclass(frozen=True, slots=True)
class MassCancelReport:
    session: str
    cl_ord_id: str
    request_type: str
    response: str  # the request type when accepted, "0" when rejected
    total_affected: int
    text: str = ""
    reject_reason: int | None = None
    poss_resend: bool = False


@dataclass(frozen=True, slots=True)
class VenueStatusRequest:
    venue: str
    child_id: str
    symbol: str
    side: Side


@dataclass(frozen=True, slots=True)
class CancelReject:
    session: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: OrdStatus
    response_to: CxlRejResponseTo
    reason: CxlRejReason
    text: str
    poss_resend: bool = False


@dataclass(frozen=True, slots=True)
class VenueNewOrder:
    venue: str
    child_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None
    account: str
    max_floor: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueCancel:
    venue: str
    cancel_id: str
    child_id: str
    symbol: str
    side: Side
    qty: Decimal


@dataclass(frozen=True, slots=True)
class VenueReplace:
    """An amend of a working child (OrderCancelReplaceRequest): `amend_id` replaces `orig_cl_ord_id`, the
    ClOrdID the venue knows the child by now; `qty` is the child's new OrderQty, its CumQty included."""

    venue: str
    amend_id: str
    orig_cl_ord_id: str
    child_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None
    account: str
    max_floor: Decimal | None = None


Outbound = (ExecutionReport | CancelReject | MassCancelReport | VenueNewOrder | VenueCancel | VenueReplace
            | VenueStatusRequest)
fast_init_all(Outbound.__args__)  # built on every batch: see oms.fastinit


def report(
    order: Order,
    exec_type: ExecType,
    *,
    exec_id: str | None = None,
    cl_ord_id: str | None = None,
    orig_cl_ord_id: str | None = None,
    text: str | None = None,
    last_mkt: str = "",
    exec_ref_id: str = "",
    mass_status_req_id: str = "",
    tot_num_reports: int | None = None,
    last_rpt_requested: bool = False,
    restatement_reason: int | None = None,
) -> ExecutionReport:
    """An ExecutionReport of the order as it stands now."""
    return ExecutionReport(
        session=order.session,
        order_id=order.order_id,
        cl_ord_id=cl_ord_id or order.cl_ord_id,
        orig_cl_ord_id=orig_cl_ord_id,
        exec_id=exec_id or order.next_exec_id(),
        exec_type=exec_type,
        ord_status=order.ord_status,
        account=order.account,
        symbol=order.symbol,
        side=order.side._value_ if order.side else "",  # _value_, not .value: see fix_engine.codec
        ord_type=order.ord_type,
        time_in_force=order.time_in_force,
        order_qty=order.order_qty,
        price=order.price,
        last_qty=order.last_qty,
        last_px=order.last_px,
        leaves_qty=order.leaves_qty,
        cum_qty=order.cum_qty,
        avg_px=order.avg_px,
        text=order.text if text is None else text,
        ord_rej_reason=order.rej_reason if exec_type is ExecType.REJECTED else None,
        last_mkt=last_mkt,
        stop_px=order.stop_px,
        exec_ref_id=exec_ref_id,
        mass_status_req_id=mass_status_req_id,
        tot_num_reports=tot_num_reports,
        last_rpt_requested=last_rpt_requested,
        exec_restatement_reason=restatement_reason,
    )


def venue_replace(order: Order, child: Child) -> VenueReplace:
    assert order.side is not None and child.amend_qty is not None
    return VenueReplace(
        child.venue, child.amend_id, child.venue_id, child.child_id, order.symbol, order.side, child.ord_type,
        child.time_in_force, child.amend_qty, child.amend_price, order.account, order.max_floor,
    )


def venue_new(order: Order, child: Child) -> VenueNewOrder:
    assert order.side is not None
    return VenueNewOrder(
        child.venue, child.child_id, order.symbol, order.side, child.ord_type, child.time_in_force,
        child.qty, child.price, order.account, order.max_floor,
    )
