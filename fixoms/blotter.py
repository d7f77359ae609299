"""Read models for operators, straight from the journal: the blotter, one order's story, positions and
P&L, the audit trail."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, tzinfo
from decimal import Decimal
from typing import Any

from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine as SAEngine

from oms.audit import Verification, verify
from oms.enums import TERMINAL, reported_status
from oms.positions import Fill, PositionBook, SettlementCalendar, Trade, compute, fmt_price, fmt_qty
from oms.queries import (
    OrderRow,
    audit_count,
    audit_instances,
    audit_tail,
    executions,
    iter_audit,
    order_detail,
    orders_page,
)
from oms.queries import list_orders as _list_orders

_AVG_PX = Decimal("0.0001")


def order_dict(o: OrderRow) -> dict[str, Any]:
    """An order as the blotter (and --json) shows it: wire-value enums by name, decimals as text."""
    qty, cum = o.order_qty, o.cum_qty
    return {
        "order_id": o.order_id,
        "session": o.session,
        "account": o.account,
        "cl_ord_id": o.cl_ord_id,
        "symbol": o.symbol,
        "side": o.side.name if o.side else "",
        "ord_type": o.ord_type,
        "order_qty": str(qty),
        "price": str(o.price) if o.price is not None else "",
        "status": reported_status(o.status, o.pending).name,
        "cum_qty": str(cum),
        "leaves_qty": "0" if o.status in TERMINAL else str(qty - cum),
        "avg_px": str((o.notional / cum).quantize(_AVG_PX)) if cum else "0",
        "text": o.text,
        "created_at": o.created_at.isoformat() if o.created_at else "",
    }


BLOTTER_COLUMNS = ("order_id", "session", "account", "cl_ord_id", "symbol", "side", "order_qty", "price", "status",
                   "cum_qty", "leaves_qty", "avg_px", "text")


def blotter_table(rows: list[dict[str, Any]], title: str = "Blotter", caption: str | None = None) -> Table:
    """The blotter as a table; `caption` (e.g. that the list was cut) is printed under it. Linear in the
    rows (rich draws about a thousand rows a second here): callers limit what they pass."""
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for col in BLOTTER_COLUMNS:
        t.add_column(col)
    for r in rows:
        # Text, not str: a ClOrdID or a venue's text is shown as sent, never read as rich markup
        # ("[/b]" would raise) or emoji codes.
        t.add_row(*[Text(str(r[k])) for k in BLOTTER_COLUMNS])
    return t


def list_orders(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                symbol: str | None = None, session: str | None = None, venue: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """The blotter's rows (oms.queries.list_orders): every matching order, or the newest `limit`."""
    return [order_dict(o) for o in _list_orders(engine, open_only=open_only, account=account, symbol=symbol,
                                                session=session, venue=venue, limit=limit)]


def page_orders(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                symbol: str | None = None, session: str | None = None, venue: str | None = None,
                limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The blotter's rows (the newest `limit` if given) and how many orders match in all."""
    page = orders_page(engine, open_only=open_only, account=account, symbol=symbol, session=session, venue=venue,
                       limit=limit)
    return [order_dict(o) for o in page.rows], page.total


def show_order(engine: SAEngine, order_id: str) -> dict[str, Any] | None:
    detail = order_detail(engine, order_id)
    if detail is None:
        return None
    out = order_dict(detail.order)
    out["children"] = [
        {
            "child_id": c.child_id,
            "venue": c.venue,
            "qty": str(c.qty),
            "price": str(c.price) if c.price is not None else "",
            "cum_qty": str(c.cum_qty),
            "status": c.status.name,
            "venue_order_id": c.venue_order_id,
            "text": c.text,
        }
        for c in detail.children
    ]
    out["events"] = [{"seq": e.seq, "ts": e.ts.isoformat(), "kind": e.kind, "payload": e.payload}
                     for e in detail.events]
    return out


# --- positions and P&L -----------------------------------------------------------------------------------
def positions_report(engine: SAEngine, *, account: str | None = None, symbol: str | None = None,
                     marks: dict[str, Decimal] | None = None, calendar: SettlementCalendar | None = None,
                     tz: tzinfo = UTC, as_of: date | None = None) -> PositionBook:
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
