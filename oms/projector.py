"""The projector: derives the journal's queryable tables from its log, off the engine's critical path.

The engine appends one `BatchRecord` per batch to `journal_log` (oms.journal) and sends only once that
commit is done. Everything operators and restarts read - orders, children, executions, events,
cl_ord_ids and the hash-chained audit trail - is written here, from the records, in one transaction per
*pass*: a pass takes every record appended since the last one, so under load one transaction carries
many batches, and an order changed by several of them (new, venue ack, fill) is written once, as the
last of them left it. The pass moves `journal_marks.projected` in the same transaction, which is what
makes a pass idempotent and a restart exact: it projects the log past that mark before loading.

Pure database work on rows the engine already built: no order logic runs here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from oms import audit
from oms import events as ev
from oms.fastinit import fast_init
from oms.rows import child_row_from_snapshot, order_row_from_snapshot
from oms.schema import (
    audit_t,
    children_t,
    cl_ord_ids_t,
    events_t,
    executions_t,
    journal_marks_t,
    orders_t,
)
from oms.sqlprep import Prepared, payload_json

log = logging.getLogger(__name__)

@fast_init  # pickled and unpickled once a batch: see oms.fastinit
@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What one engine batch appends to the log (pickled): enough to derive every other table, and to
    resend the batch's client messages after a crash between its commit and its send."""

    ts: datetime
    events: list[ev.Event]
    orders: list[tuple[Any, ...]]  # order_snapshot of each order the batch changed
    children: list[tuple[Any, ...]]  # child_snapshot of each child its events named
    client_messages: list[Any]  # ExecutionReport / CancelReject / MassCancelReport, as sent
    # Its business messages (audit.business), in and out, as objects: the projector makes their audit rows
    # (records written before that hold (who, kind, canonical JSON summary) per row).
    audit: list[Any]


def cl_ord_id_used(e: ev.Event) -> tuple[str, str, str] | None:
    """(session, ClOrdID, order id) if the event's request used a ClOrdID: every ClOrdID a session used (a
    replace's and a cancel's too) is kept, and a restart finds finished orders by them."""
    if (isinstance(e, ev.OrderAccepted | ev.OrderRejected | ev.ReplaceRequested)
            or isinstance(e, ev.CancelRequested) and e.cl_ord_id):
        return e.session, e.cl_ord_id, e.order_id
    return None


def execution_change(e: ev.Event) -> tuple[str, str, str, Decimal, Decimal] | None:
    """(venue, venue exec id, status, qty, px) the event writes into its execution's row: a fill makes the
    row ("ok"), a bust or a correction changes it; None for any other event."""
    if isinstance(e, ev.ChildFilled):
        return e.venue, e.venue_exec_id, "ok", e.last_qty, e.last_px
    if isinstance(e, ev.FillBusted):
        return e.venue, e.venue_exec_id, "busted", e.qty, e.px
    if isinstance(e, ev.FillCorrected):
        return e.venue, e.venue_exec_id, "corrected", e.new_qty, e.new_px
    return None


def _insert_or_skip(table: Any, dialect_name: str) -> Any:
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table).on_conflict_do_nothing()


def _upsert(table: Any, key: str, dialect_name: str) -> Any:
    ins = (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)
    return ins.on_conflict_do_update(index_elements=[table.c[key]],
                                     set_={c.name: ins.excluded[c.name] for c in table.columns if c.name != key})


class Projector:
    """Writes passes of log records into the derived tables. Called with the journal's projection lock
    held (oms.journal), from its projector thread or from a restart's catch-up; one writer at a time.

    `audit_head` / `set_audit_head` give access to the journal's cached chain head, which operator rows
    (Journal.append_audit) move too: both write under the same audit lock."""

    def __init__(self, instance: str, dialect: Any) -> None:
        self.instance = instance
        self.dialect = dialect
        name = dialect.name
        self._statements: dict[str, Prepared] = {
            "events": Prepared(insert(events_t), ["instance", "ts", "kind", "order_id", "payload"], dialect,
                               copy=True, raw=["payload"]),
            "orders": Prepared(_upsert(orders_t, "order_id", name), None, dialect),
            "children": Prepared(_upsert(children_t, "child_id", name), None, dialect),
            "executions": Prepared(insert(executions_t), None, dialect, copy=True),
            "cl_ord_ids": Prepared(insert(cl_ord_ids_t), None, dialect, copy=True),
            "audit": Prepared(insert(audit_t), None, dialect, copy=True),
            # A lenient pass (see prepare): rows that conflict with what the tables hold are skipped.
            "executions_or_skip": Prepared(_insert_or_skip(executions_t, name), None, dialect),
            "cl_ord_ids_or_skip": Prepared(_insert_or_skip(cl_ord_ids_t, name), None, dialect),
        }
        self._marks_update = update(journal_marks_t).where(journal_marks_t.c.instance == bindparam("b_instance"))
        self._exec_update = (
            update(executions_t)
            .where(executions_t.c.venue == bindparam("b_venue"))
            .where(executions_t.c.venue_exec_id == bindparam("b_venue_exec_id"))
            .values(status=bindparam("b_status"), last_qty=bindparam("b_last_qty"), last_px=bindparam("b_last_px"))
        )

    def statement(self, name: str) -> Prepared:
        return self._statements[name]

    def prepare(self, records: Iterable[tuple[int, BatchRecord]], lenient: bool = False) -> Pass:
        """The Python half of a pass over `records` (batch number, record), in order, which needs no
        connection: every row, bound as the driver takes it, and the audit entries. On SQLite a pass's
        transaction holds the write lock the engine's next append waits for, so the journal prepares
        before it begins (oms.journal), then runs `execute` in it.

        `lenient`: an execution or ClOrdID row that conflicts with one the tables already hold is skipped
        instead of failing the pass. The engine never writes such a row (it de-duplicates both in memory);
        a row put there by hand must not stop the projection of everything after it, and the batch is
        already durable in the log and sent."""
        instance = self.instance
        event_rows: list[dict[str, Any]] = []
        exec_rows: list[dict[str, Any]] = []
        exec_updates: list[dict[str, Any]] = []
        clord_rows: list[dict[str, Any]] = []
        orders: dict[str, tuple[Any, ...]] = {}
        children: dict[str, tuple[Any, ...]] = {}
        entries: list[tuple[datetime, list[audit.Entry]]] = []
        last = 0
        for batch, rec in records:
            last = batch
            ts = rec.ts
            for e in rec.events:
                event_rows.append({"instance": instance, "ts": ts, "kind": type(e).__name__,
                                   "order_id": getattr(e, "order_id", None), "payload": payload_json(e)})
                change = execution_change(e)
                if change is not None:
                    venue, venue_exec_id, status, qty, px = change
                    if isinstance(e, ev.ChildFilled):
                        exec_rows.append({"exec_id": e.exec_id, "order_id": e.order_id, "child_id": e.child_id,
                                          "venue": venue, "venue_exec_id": venue_exec_id, "last_qty": qty,
                                          "last_px": px, "status": status, "ts": e.ts})
                    else:
                        exec_updates.append({"b_venue": venue, "b_venue_exec_id": venue_exec_id, "b_status": status,
                                             "b_last_qty": qty, "b_last_px": px})
                else:
                    used = cl_ord_id_used(e)
                    if used is not None:
                        clord_rows.append({"session": used[0], "cl_ord_id": used[1], "order_id": used[2]})
            for snap in rec.orders:
                orders[snap[0]] = snap
            for snap in rec.children:
                children[snap[0]] = snap
            if rec.audit:
                entries.append((ts, audit.entries_of(rec.audit, summaries=False)))
        st = self._statements
        bound: list[tuple[Prepared, list[Any]]] = []
        if event_rows:
            bound.append((st["events"], st["events"].bind(event_rows)))
        if orders:
            rows = [order_row_from_snapshot(s, instance) for s in orders.values()]
            bound.append((st["orders"], st["orders"].bind(rows)))
        if children:
            rows = [child_row_from_snapshot(s) for s in children.values()]
            bound.append((st["children"], st["children"].bind(rows)))
        if exec_rows:
            name = "executions_or_skip" if lenient else "executions"
            bound.append((st[name], st[name].bind(exec_rows)))
        return Pass(last, bound, exec_updates, clord_rows, entries, lenient)

    def execute(self, conn: Any, p: Pass, audit_head: tuple[int, str] | None) -> tuple[int, tuple[int, str] | None]:
        """The database half of a pass: chain the audit entries after `audit_head` and run every
        statement of the pass in the caller's transaction. Returns (last batch, the chain's new head)."""
        instance = self.instance
        audit_rows: list[dict[str, Any]] = []
        for ts, entries in p.audit:
            for r in audit.chain(audit_head, entries, ts):
                audit_rows.append({"instance": instance, "seq": r.seq, "ts": r.ts, "who": r.who, "kind": r.kind,
                                   "summary": r.summary, "prev_hash": r.prev_hash, "hash": r.hash})
                audit_head = (r.seq, r.hash)
        st = self._statements
        if audit_rows:
            st["audit"].execute(conn, audit_rows)
        for statement, rows in p.bound:
            statement.run(conn, rows)
        if p.exec_updates:
            conn.execute(self._exec_update, p.exec_updates)
        if p.clord_rows:
            st["cl_ord_ids_or_skip" if p.lenient else "cl_ord_ids"].execute(conn, p.clord_rows)
        if p.last:
            conn.execute(self._marks_update, {"b_instance": instance, "projected": p.last})
        return p.last, audit_head


@dataclass(frozen=True, slots=True)
class Pass:
    """A projection pass made ready outside the transaction (Projector.prepare)."""

    last: int  # the last batch it projects
    bound: list[tuple[Prepared, list[Any]]]  # statement and its rows, bound, in the order they run
    exec_updates: list[dict[str, Any]]
    clord_rows: list[dict[str, Any]]
    audit: list[tuple[datetime, list[audit.Entry]]]  # per record: its time and its audit entries
    lenient: bool


def read_marks(conn: Any, instance: str) -> tuple[int, int]:
    """(projected, sent) of the instance, creating its row (0, 0) the first time."""
    row = conn.execute(select(journal_marks_t.c.projected, journal_marks_t.c.sent)
                       .where(journal_marks_t.c.instance == instance)).first()
    if row is None:
        conn.execute(insert(journal_marks_t).values(instance=instance, projected=0, sent=0))
        return 0, 0
    return int(row.projected), int(row.sent)
