"""Order and child <-> table row mapping, for the journal's projections and its restart loads.

The engine thread takes a snapshot of an order (one attrgetter call: a tuple in the table's column
order); the projector turns snapshots into rows, and a restart turns rows back into orders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, overload

from oms.enums import OrdRejReason, OrdStatus, OrdType, Side, TimeInForce
from oms.model import Child, Order
from oms.schema import children_t, orders_t


def _now() -> datetime:
    return datetime.now(UTC)


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the journal: SQLite returns the UTC it stored without its zone, and a
    naive datetime cannot be compared with the engine's aware ones (a GTD expiry check would raise)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# The order and child attributes a record carries, in the tables' column order (`instance` aside): a
# tuple per order taken with one attrgetter call on the engine thread, turned into a row here.
ORDER_COLUMNS: tuple[str, ...] = tuple(c.name for c in orders_t.columns if c.name != "instance")
CHILD_COLUMNS: tuple[str, ...] = tuple(c.name for c in children_t.columns)
order_snapshot: Callable[[Order], tuple[Any, ...]] = attrgetter(*ORDER_COLUMNS)  # type: ignore[assignment]
child_snapshot: Callable[[Child], tuple[Any, ...]] = attrgetter(*CHILD_COLUMNS)  # type: ignore[assignment]
_ORDER_ENUMS = tuple(i for i, n in enumerate(ORDER_COLUMNS)
                     if n in ("side", "ord_type", "time_in_force", "status", "pending", "pending_ord_type",
                              "pending_tif"))
_ORDER_REJ = ORDER_COLUMNS.index("rej_reason")
_ORDER_UPDATED = ORDER_COLUMNS.index("updated_at")
_ORDER_CREATED = ORDER_COLUMNS.index("created_at")
_CHILD_ENUMS = tuple(i for i, n in enumerate(CHILD_COLUMNS) if n in ("ord_type", "time_in_force", "status"))


def order_row_from_snapshot(snap: Sequence[Any], instance: str) -> dict[str, Any]:
    values = list(snap)
    for i in _ORDER_ENUMS:
        if values[i] is not None:
            values[i] = values[i].value
    if values[_ORDER_REJ] is not None:
        values[_ORDER_REJ] = int(values[_ORDER_REJ])
    if values[_ORDER_UPDATED] is None:
        values[_ORDER_UPDATED] = values[_ORDER_CREATED]
    row = dict(zip(ORDER_COLUMNS, values, strict=True))
    row["instance"] = instance
    return row


# Columns added after the first journal_log records were written (migration 0004), with the value a
# snapshot taken before them stands for: a log tail from an older version still projects after an upgrade.
_CHILD_ADDED: dict[str, Any] = {"venue_cl_ord_id": "", "amend_id": "", "amend_qty": None, "amend_price": None}
_CHILD_DEFAULTS = tuple(_CHILD_ADDED[n] for n in CHILD_COLUMNS[len(CHILD_COLUMNS) - len(_CHILD_ADDED):])
assert CHILD_COLUMNS[len(CHILD_COLUMNS) - len(_CHILD_ADDED):] == tuple(_CHILD_ADDED), "added columns come last"


def child_row_from_snapshot(snap: Sequence[Any]) -> dict[str, Any]:
    values = list(snap)
    if len(values) < len(CHILD_COLUMNS):
        values += _CHILD_DEFAULTS[len(values) - len(CHILD_COLUMNS):]
    for i in _CHILD_ENUMS:
        values[i] = values[i].value
    return dict(zip(CHILD_COLUMNS, values, strict=True))


def order_row(o: Order, instance: str) -> dict[str, Any]:
    return order_row_from_snapshot(order_snapshot(o), instance)


def child_row(c: Child) -> dict[str, Any]:
    return child_row_from_snapshot(child_snapshot(c))


def order_from_row(r: Any) -> Order:
    return Order(
        order_id=r.order_id,
        seq=r.seq,
        session=r.session,
        account=r.account,
        cl_ord_id=r.cl_ord_id,
        symbol=r.symbol,
        side=Side(r.side) if r.side else None,
        ord_type=OrdType(r.ord_type) if r.ord_type else None,
        time_in_force=TimeInForce(r.time_in_force),
        order_qty=r.order_qty,
        price=r.price,
        stop_px=r.stop_px,
        created_at=_utc(r.created_at),
        status=OrdStatus(r.status),
        pending=OrdStatus(r.pending) if r.pending else None,
        pending_cl_ord_id=r.pending_cl_ord_id,
        pending_qty=r.pending_qty,
        pending_price=r.pending_price,
        pending_ord_type=OrdType(r.pending_ord_type) if r.pending_ord_type else None,
        pending_tif=TimeInForce(r.pending_tif) if r.pending_tif else None,
        orig_cl_ord_id=r.orig_cl_ord_id,
        expire_time=_utc(r.expire_time),
        max_floor=r.max_floor,
        ex_destination=r.ex_destination,
        target_strategy=r.target_strategy,
        arrival_mid=r.arrival_mid,
        held=bool(r.held),
        expiring=bool(r.expiring),
        cum_qty=r.cum_qty,
        notional=r.notional,
        text=r.text,
        rej_reason=OrdRejReason(r.rej_reason) if r.rej_reason is not None else None,
        report_seq=r.report_seq,
        child_seq=r.child_seq,
        updated_at=_utc(r.updated_at),
        done_for_day=bool(r.done_for_day),
    )


def child_from_row(r: Any) -> Child:
    return Child(
        child_id=r.child_id,
        order_id=r.order_id,
        venue=r.venue,
        qty=r.qty,
        price=r.price,
        ord_type=OrdType(r.ord_type),
        time_in_force=TimeInForce(r.time_in_force),
        cum_qty=r.cum_qty,
        notional=r.notional,
        status=OrdStatus(r.status),
        venue_order_id=r.venue_order_id,
        cancel_id=r.cancel_id,
        text=r.text,
        restatement_reason=r.restatement_reason,
        venue_cl_ord_id=r.venue_cl_ord_id,
        amend_id=r.amend_id,
        amend_qty=r.amend_qty,
        amend_price=r.amend_price,
    )
