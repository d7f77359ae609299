"""Read models for operators, straight from the journal: the blotter, one order's story, positions and
P&L, the audit trail."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine as SAEngine

from oms.audit import Verification, verify
from oms.enums import OrdStatus, Side, reported_status
from oms.journal import (
    audit_count,
    audit_instances,
    audit_tail,
    children_t,
    events_t,
    executions,
    iter_audit,
    orders_t,
)
from oms.positions import Book, Fill, SettlementCalendar, Trade, compute, fmt_price, fmt_qty

OPEN_STATUSES = [s.value for s in (OrdStatus.PENDING_NEW, OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)]


def _status(row: Any) -> str:
    status = reported_status(OrdStatus(row.status), OrdStatus(row.pending) if row.pending else None)
    return status.name


def order_dict(row: Any) -> dict[str, Any]:
    qty: Decimal = row.order_qty
    cum: Decimal = row.cum_qty
    terminal = row.status in {s.value for s in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED,
                                                  OrdStatus.EXPIRED, OrdStatus.DONE_FOR_DAY)}
    return {
        "order_id": row.order_id,
        "session": row.session,
        "account": row.account,
        "cl_ord_id": row.cl_ord_id,
        "symbol": row.symbol,
        "side": Side(row.side).name if row.side else "",
        "ord_type": row.ord_type,
        "order_qty": str(qty),
        "price": str(row.price) if row.price is not None else "",
        "status": _status(row),
        "cum_qty": str(cum),
        "leaves_qty": "0" if terminal else str(qty - cum),
        "avg_px": str((row.notional / cum).quantize(Decimal("0.0001"))) if cum else "0",
        "text": row.text,
        "created_at": row.created_at.isoformat() if row.created_at else "",
    }


def list_orders(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                symbol: str | None = None, session: str | None = None,
                venue: str | None = None) -> list[dict[str, Any]]:
    q = select(orders_t).order_by(orders_t.c.seq)
    if open_only:
        q = q.where(orders_t.c.status.in_(OPEN_STATUSES))
    if account:
        q = q.where(orders_t.c.account == account)
    if symbol:
        q = q.where(orders_t.c.symbol == symbol)
    if session:
        q = q.where(orders_t.c.session == session)
    if venue:
        q = q.where(orders_t.c.order_id.in_(select(children_t.c.order_id).where(children_t.c.venue == venue)))
    with engine.connect() as conn:
        return [order_dict(r) for r in conn.execute(q)]


def show_order(engine: SAEngine, order_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(orders_t).where(orders_t.c.order_id == order_id)).first()
        if row is None:
            return None
        out = order_dict(row)
        out["children"] = [
            {
                "child_id": c.child_id,
                "venue": c.venue,
                "qty": str(c.qty),
                "price": str(c.price) if c.price is not None else "",
                "cum_qty": str(c.cum_qty),
                "status": OrdStatus(c.status).name,
                "venue_order_id": c.venue_order_id,
                "text": c.text,
            }
            for c in conn.execute(select(children_t).where(children_t.c.order_id == order_id).order_by(children_t.c.child_id))
        ]
        out["events"] = [
            {"seq": e.seq, "ts": e.ts.isoformat(), "kind": e.kind, "payload": e.payload}
            for e in conn.execute(select(events_t).where(events_t.c.order_id == order_id).order_by(events_t.c.seq))
        ]
        return out


# --- positions and P&L -----------------------------------------------------------------------------------
def positions_report(engine: SAEngine, *, account: str | None = None, symbol: str | None = None,
                     marks: dict[str, Decimal] | None = None, calendar: SettlementCalendar | None = None,
                     tz: tzinfo = UTC, as_of: date | None = None) -> Book:
    """Positions per account and symbol from the journal's executions (see oms.positions)."""
    fills = [Fill(r.exec_id, r.account, r.symbol, r.side, r.last_qty, r.last_px, r.ts, r.status)
             for r in executions(engine, account=account, symbol=symbol)]
    return compute(fills, marks, calendar=calendar, tz=tz, as_of=as_of)


def trade_dict(t: Trade) -> dict[str, Any]:
    return {"exec_id": t.exec_id, "account": t.account, "symbol": t.symbol, "side": t.side, "qty": fmt_qty(t.qty),
            "px": fmt_price(t.px), "ts": t.ts.isoformat(), "trade_date": t.trade_date.isoformat(),
            "settle_date": t.settle_date.isoformat(), "status": t.status}


# --- audit ---------------------------------------------------------------------------------------------------
def verify_audit(engine: SAEngine, instance: str | None = None,
                 progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict[str, Verification]:
    """Walk each instance's hash chain (or one instance's) and report where it first breaks.
    `progress(instance, rows)` is called before each chain and returns what to call per row read."""
    instances = [instance] if instance else audit_instances(engine)
    out = {}
    for name in instances:
        rows: Iterable[Any] = iter_audit(engine, name)
        if progress is not None:
            rows = _counted(rows, progress(name, audit_count(engine, name)))
        out[name] = verify(rows)
    return out


def _counted(rows: Iterable[Any], tick: Callable[[], None]) -> Iterator[Any]:
    for row in rows:
        tick()
        yield row


def audit_rows(engine: SAEngine, instance: str, limit: int = 20, kind: str | None = None) -> list[dict[str, Any]]:
    out = []
    for r in audit_tail(engine, instance, limit, kind):
        d = r.as_dict()
        d["summary"] = json.loads(r.summary)
        out.append(d)
    return out
