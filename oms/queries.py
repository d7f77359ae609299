"""Operator reads (CLI, admin socket, reports): the blotter, one order's story, credentials, the audit
trail, executions, TCA figures.

The journal's tables stay behind this module: callers get plain typed rows, and only code in `oms`
imports oms.schema or oms.rows (an import-linter contract). What other packages need to open the
journal's database (`make_engine`, `create_schema`) is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SAEngine

from oms import audit
from oms import events as ev
from oms.access import Credential, hash_password
from oms.enums import OrdStatus, Side
from oms.rows import _now
from oms.schema import (
    audit_t,
    children_t,
    create_schema,
    credentials_t,
    events_t,
    executions_t,
    make_engine,
    orders_t,
)

__all__ = [
    "ERROR_ACCOUNT",
    "OPEN_STATUSES",
    "ChildRow",
    "EventRow",
    "ExecutionRow",
    "OrderDetail",
    "OrderPage",
    "OrderRow",
    "append_audit",
    "audit_count",
    "audit_instances",
    "audit_tail",
    "count_orders",
    "create_schema",
    "executions",
    "fills_by_venue",
    "iter_audit",
    "list_orders",
    "load_credentials",
    "make_engine",
    "order_detail",
    "orders_page",
    "set_credential",
    "tca_figures",
]


def _utc(ts: datetime) -> datetime:
    """Timestamps as aware UTC datetimes on every backend (SQLite gives them back naive, PostgreSQL in
    the session's time zone)."""
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def load_credentials(engine: SAEngine) -> dict[str, Credential]:
    with engine.connect() as conn:
        return {
            r.comp_id: Credential(r.comp_id, r.username, r.salt, r.hash,
                                  frozenset(a for a in r.allowed_addresses.split(",") if a))
            for r in conn.execute(select(credentials_t))
        }


def set_credential(engine: SAEngine, comp_id: str, username: str, password: str,
                   allowed_addresses: frozenset[str], who: str) -> None:
    """Store a salted hash (never the password), replacing any earlier one."""
    salt, digest = hash_password(password)
    row = {"comp_id": comp_id, "username": username, "salt": salt, "hash": digest,
           "allowed_addresses": ",".join(sorted(allowed_addresses)), "updated_at": _now(), "updated_by": who}
    with engine.begin() as conn:
        conn.execute(credentials_t.delete().where(credentials_t.c.comp_id == comp_id))
        conn.execute(insert(credentials_t), [row])


# --- read helpers for operators (CLI, admin socket) ----------------------------------------------------
def audit_count(engine: SAEngine, instance: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_t)
                                .where(audit_t.c.instance == instance)).scalar() or 0)


def audit_instances(engine: SAEngine) -> list[str]:
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(select(audit_t.c.instance).distinct().order_by(audit_t.c.instance))]


def iter_audit(engine: SAEngine, instance: str, chunk: int = 5000) -> Iterator[audit.Row]:
    """The instance's audit rows in seq order, read in chunks (the trail can be large)."""
    last = 0
    cols = (audit_t.c.seq, audit_t.c.ts, audit_t.c.who, audit_t.c.kind, audit_t.c.summary, audit_t.c.prev_hash,
            audit_t.c.hash)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(*cols).where(audit_t.c.instance == instance).where(audit_t.c.seq > last)
                .order_by(audit_t.c.seq).limit(chunk)
            ).all()
        for r in rows:
            yield audit.Row(int(r.seq), r.ts, r.who, r.kind, r.summary, r.prev_hash, r.hash)
        if len(rows) < chunk:
            return
        last = int(rows[-1].seq)


def audit_tail(engine: SAEngine, instance: str, limit: int = 20, kind: str | None = None) -> list[audit.Row]:
    """The last `limit` rows (of one kind if given), oldest first."""
    q = select(audit_t).where(audit_t.c.instance == instance)
    if kind:
        q = q.where(audit_t.c.kind == kind)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(audit_t.c.seq.desc()).limit(limit)).all()
    return [audit.Row(int(r.seq), r.ts, r.who, r.kind, r.summary, r.prev_hash, r.hash) for r in reversed(rows)]


def append_audit(engine: SAEngine, instance: str, who: str, kind: str, summary: dict[str, Any]) -> int:
    """An audit row written by a process that runs no engine (the CLI while the engine is down)."""
    # Imported here: the writer (and what it imports) is not what the operators' reads need to load.
    from oms.journal import Journal

    return Journal(engine, instance).append_audit(who, kind, summary)


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """One execution with the order it belongs to (the input of oms.positions)."""

    exec_id: str
    order_id: str
    account: str
    symbol: str
    side: str
    last_qty: Decimal
    last_px: Decimal
    status: str
    ts: datetime


def fills_by_venue(engine: SAEngine, since: datetime) -> dict[str, int]:
    """Executions standing (not busted) per venue since `since`, finished orders' included."""
    q = (select(executions_t.c.venue, func.count()).where(executions_t.c.ts >= since)
         .where(executions_t.c.status != "busted").group_by(executions_t.c.venue))
    with engine.connect() as conn:
        return {venue: int(n) for venue, n in conn.execute(q)}


# The broker's error account: venue fills no client order could take (FillUnallocated: the late fill
# of a child in doubt, a venue's overfill) are its position until the desk resolves them.
ERROR_ACCOUNT = "ERROR"


def executions(engine: SAEngine, account: str | None = None, symbol: str | None = None) -> list[ExecutionRow]:
    """Every execution (busted ones too, with their status) joined with its order, oldest first; and
    the unallocated fills, as executions of the error account (ERROR_ACCOUNT)."""
    rows = _client_executions(engine, account, symbol)
    if account in (None, "", ERROR_ACCOUNT):
        rows += _unallocated(engine, symbol)
        rows.sort(key=lambda r: (r.ts, r.exec_id))
    return rows


def _unallocated(engine: SAEngine, symbol: str | None) -> list[ExecutionRow]:
    q = (select(events_t.c.payload, events_t.c.ts, orders_t.c.symbol, orders_t.c.side)
         .join(orders_t, orders_t.c.order_id == events_t.c.order_id)
         .where(events_t.c.kind == "FillUnallocated"))
    if symbol:
        q = q.where(orders_t.c.symbol == symbol)
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q):
            e = ev.from_payload("FillUnallocated", r.payload)
            assert isinstance(e, ev.FillUnallocated)
            ts = r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=UTC)
            out.append(ExecutionRow(f"U:{e.venue}:{e.venue_exec_id}", e.order_id, ERROR_ACCOUNT, r.symbol,
                                    r.side or "", e.qty, e.px, "ok", ts))
    return out


def _client_executions(engine: SAEngine, account: str | None, symbol: str | None) -> list[ExecutionRow]:
    q = (
        select(executions_t.c.exec_id, executions_t.c.order_id, orders_t.c.account, orders_t.c.symbol,
               orders_t.c.side, executions_t.c.last_qty, executions_t.c.last_px, executions_t.c.status,
               executions_t.c.ts)
        .join(orders_t, orders_t.c.order_id == executions_t.c.order_id)
        .order_by(executions_t.c.ts, executions_t.c.exec_id)
    )
    if account:
        q = q.where(orders_t.c.account == account)
    if symbol:
        q = q.where(orders_t.c.symbol == symbol)
    with engine.connect() as conn:
        return [
            ExecutionRow(r.exec_id, r.order_id, r.account, r.symbol, r.side or "", r.last_qty, r.last_px, r.status,
                         r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=UTC))
            for r in conn.execute(q)
        ]


# --- the blotter and one order's story --------------------------------------------------------------------
# Working orders as the blotter means them (stored status; a pending cancel/replace is in `pending`).
OPEN_STATUSES: tuple[OrdStatus, ...] = (OrdStatus.PENDING_NEW, OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A client order as the orders table has it (the blotter's columns)."""

    seq: int
    order_id: str
    session: str
    account: str
    cl_ord_id: str
    symbol: str
    side: Side | None
    ord_type: str | None
    order_qty: Decimal
    price: Decimal | None
    status: OrdStatus
    pending: OrdStatus | None
    cum_qty: Decimal
    notional: Decimal
    text: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderPage:
    """The orders a blotter shows and how many match in all (`total` >= len(rows))."""

    rows: list[OrderRow]
    total: int

    @property
    def complete(self) -> bool:
        return len(self.rows) >= self.total


@dataclass(frozen=True, slots=True)
class ChildRow:
    """A venue child order of a client order."""

    child_id: str
    venue: str
    qty: Decimal
    price: Decimal | None
    cum_qty: Decimal
    status: OrdStatus
    venue_order_id: str
    text: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One journaled event of an order: its kind (the event class name) and payload as stored."""

    seq: int
    ts: datetime
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OrderDetail:
    order: OrderRow
    children: list[ChildRow]
    events: list[EventRow]


_ORDER_COLUMNS = (
    orders_t.c.seq, orders_t.c.order_id, orders_t.c.session, orders_t.c.account, orders_t.c.cl_ord_id,
    orders_t.c.symbol, orders_t.c.side, orders_t.c.ord_type, orders_t.c.order_qty, orders_t.c.price,
    orders_t.c.status, orders_t.c.pending, orders_t.c.cum_qty, orders_t.c.notional, orders_t.c.text,
    orders_t.c.created_at,
)


def _order(r: Any) -> OrderRow:
    return OrderRow(
        int(r.seq), r.order_id, r.session, r.account, r.cl_ord_id, r.symbol, Side(r.side) if r.side else None,
        r.ord_type, r.order_qty, r.price, OrdStatus(r.status), OrdStatus(r.pending) if r.pending else None,
        r.cum_qty, r.notional, r.text, _utc(r.created_at) if r.created_at else None,
    )


def _order_filter(open_only: bool, account: str | None, symbol: str | None, session: str | None,
                  venue: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if open_only:
        where.append(orders_t.c.status.in_([s.value for s in OPEN_STATUSES]))
    if account:
        where.append(orders_t.c.account == account)
    if symbol:
        where.append(orders_t.c.symbol == symbol)
    if session:
        where.append(orders_t.c.session == session)
    if venue:
        where.append(orders_t.c.order_id.in_(select(children_t.c.order_id).where(children_t.c.venue == venue)))
    return where


def _select_orders(conn: Connection, where: list[ColumnElement[bool]], limit: int | None) -> list[OrderRow]:
    q = select(*_ORDER_COLUMNS).where(*where)
    if limit is None:
        return [_order(r) for r in conn.execute(q.order_by(orders_t.c.seq, orders_t.c.order_id))]
    # The newest `limit` (the database sorts and cuts), shown oldest first like the full list.
    rows = conn.execute(q.order_by(orders_t.c.seq.desc(), orders_t.c.order_id.desc()).limit(limit)).all()
    return [_order(r) for r in reversed(rows)]


def _count(conn: Connection, where: list[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(orders_t).where(*where)).scalar() or 0)


def list_orders(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                symbol: str | None = None, session: str | None = None, venue: str | None = None,
                limit: int | None = None) -> list[OrderRow]:
    """Orders matching every filter given, in journal order (seq); with `limit`, only the newest
    `limit` of them (still oldest first). `venue`: orders with a child at that venue."""
    where = _order_filter(open_only, account, symbol, session, venue)
    with engine.connect() as conn:
        return _select_orders(conn, where, limit)


def count_orders(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                 symbol: str | None = None, session: str | None = None, venue: str | None = None) -> int:
    """How many orders match (the filters of list_orders), counted by the database."""
    where = _order_filter(open_only, account, symbol, session, venue)
    with engine.connect() as conn:
        return _count(conn, where)


def orders_page(engine: SAEngine, *, open_only: bool = False, account: str | None = None,
                symbol: str | None = None, session: str | None = None, venue: str | None = None,
                limit: int | None = None) -> OrderPage:
    """list_orders with how many match in all. The count is asked for only when the limit cut the
    list; on a live journal it may include orders newer than the rows read (never fewer than them)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    where = _order_filter(open_only, account, symbol, session, venue)
    with engine.connect() as conn:
        rows = _select_orders(conn, where, limit)
        total = _count(conn, where) if limit is not None and len(rows) >= limit else len(rows)
    return OrderPage(rows, max(total, len(rows)))


def order_detail(engine: SAEngine, order_id: str) -> OrderDetail | None:
    """One order with its venue children (by child id) and every event journaled for it (in order)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_ORDER_COLUMNS).where(orders_t.c.order_id == order_id)).first()
        if row is None:
            return None
        children = [
            ChildRow(c.child_id, c.venue, c.qty, c.price, c.cum_qty, OrdStatus(c.status), c.venue_order_id, c.text)
            for c in conn.execute(
                select(children_t.c.child_id, children_t.c.venue, children_t.c.qty, children_t.c.price,
                       children_t.c.cum_qty, children_t.c.status, children_t.c.venue_order_id, children_t.c.text)
                .where(children_t.c.order_id == order_id).order_by(children_t.c.child_id))
        ]
        events = [
            EventRow(int(e.seq), _utc(e.ts), e.kind, e.payload)
            for e in conn.execute(
                select(events_t.c.seq, events_t.c.ts, events_t.c.kind, events_t.c.payload)
                .where(events_t.c.order_id == order_id).order_by(events_t.c.seq))
        ]
    return OrderDetail(_order(row), children, events)


# --- TCA --------------------------------------------------------------------------------------------------
def tca_figures(engine: SAEngine) -> list[dict[str, Any]]:
    """The TCA figures recorded for each finished order (TcaRecorded events), oldest first, as the
    dicts sor.tca.ParentTCA.from_dict reads."""
    q = select(events_t.c.payload).where(events_t.c.kind == "TcaRecorded").order_by(events_t.c.seq)
    with engine.connect() as conn:
        return [r.payload["figures"] for r in conn.execute(q)]
