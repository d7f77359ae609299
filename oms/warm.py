"""A standby's order state, kept warm from the journal's log (`fixoms run --standby`, fixoms.ha).

A standby reads every record the primary appends (oms.projector.BatchRecord). `WarmState` applies each
one to what a restart would load (`Journal.load_open`: oms.ports.LoadedState), so that at a takeover the
engine starts from memory: the journal only projects the log's last records into its tables and hands
over this state moved on by the records the standby had not read yet (`Journal._load_warm`), instead
of reading the working orders, every ClOrdID and every finished order's fills from the tables.

What it keeps, record by record, as the tables would have it:
- the working orders with their children (each order's snapshot in the record replaces the order; its
  children's snapshots replace theirs) and their executions (from the fill, bust and correction events);
- every ClOrdID used (the projector's rule, oms.projector.cl_ord_id_used), the order counter, the
  operator's risk changes;
- what each finished order filled (risk's positions at start), and the finished orders with a child in
  doubt.

A finished order that a bust reopens comes back without the executions the standby let go when it
finished: it is marked stale, and the takeover reads it from the tables instead (`stale`).

It starts from the tables, once, at the projected mark (`load`), and applies the log from there.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from oms import events as ev
from oms.journal import (
    RISK_CHANGES,
    FinishedFill,
    Journal,
    cl_ord_ids,
    finished_fill,
    finished_fill_rows,
    in_doubt_children,
    max_seq,
    risk_changes,
    sum_fills,
    unallocated_fills,
    working_rows,
)
from oms.model import Order
from oms.ports import LoadedState
from oms.projector import BatchRecord, cl_ord_id_used, execution_change
from oms.rows import child_from_row, child_row_from_snapshot, order_from_row, order_row_from_snapshot
from oms.schema import journal_marks_t

# (venue, venue exec id) -> [order id, child id, our exec id, qty, px, status] of an execution row
Executions = dict[tuple[str, str], list[Any]]


class WarmState:
    """See the module's docstring. Owned by one thread (the standby's, then the engine's at the takeover)."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.seen = 0  # the last batch applied
        self.orders: dict[str, Order] = {}  # working orders
        self.executions: dict[str, Executions] = {}  # by working order
        self.unallocated: dict[str, set[tuple[str, str]]] = {}  # by working order: FillUnallocated's ids
        self.stale: set[str] = set()  # working orders to read from the tables at the takeover
        self.cl_ord_ids: dict[tuple[str, str], str] = {}
        self.max_seq = 0
        self.risk_changes: list[ev.Event] = []
        self.finished: dict[str, FinishedFill] = {}  # by finished order that filled
        self.in_doubt: dict[str, set[str]] = {}  # finished order -> its children in doubt

    @classmethod
    def load(cls, journal: Journal) -> WarmState:
        """The state the tables hold at their projected mark, read in one snapshot (on PostgreSQL a
        repeatable read; in the process that projects, under its projection lock)."""
        warm = cls(journal.instance)
        instance = journal.instance
        with journal._project_lock, journal.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                # (read, never created here: the primary's projector creates the row)
                warm.seen = int(conn.execute(select(journal_marks_t.c.projected)
                                             .where(journal_marks_t.c.instance == instance)).scalar() or 0)
                warm.orders, rows = working_rows(conn, instance)
                for r in rows:
                    warm._execution(r.order_id, r.child_id, r.venue, r.venue_exec_id, r.exec_id, r.last_qty,
                                    r.last_px, r.status)
                warm.unallocated = {order_id: keys for order_id, keys in unallocated_fills(conn, instance).items()
                                    if order_id in warm.orders}
                warm.cl_ord_ids = cl_ord_ids(conn)
                warm.max_seq = max_seq(conn, instance)
                warm.risk_changes = risk_changes(conn, instance)
                warm.finished = {f[0]: f for f in finished_fill_rows(conn, instance)}
                for order_id, child_id in in_doubt_children(conn, instance):
                    warm.in_doubt.setdefault(order_id, set()).add(child_id)
        return warm

    # --- following the log -------------------------------------------------------------------------
    def apply(self, batch: int, record: BatchRecord) -> None:
        """One log record, in the log's order (a batch at or before `seen` is ignored)."""
        if batch <= self.seen:
            return
        accepted: set[str] = set()
        for e in record.events:
            used = cl_ord_id_used(e)
            if used is not None:
                self.cl_ord_ids[used[:2]] = used[2]
            change = execution_change(e)
            if change is not None:
                venue, venue_exec_id, status, qty, px = change
                if isinstance(e, ev.ChildFilled):
                    self._execution(e.order_id, e.child_id, venue, venue_exec_id, e.exec_id, qty, px, status)
                elif isinstance(e, ev.FillBusted | ev.FillCorrected):
                    self._amend(e.order_id, venue, venue_exec_id, status, qty, px)
            elif isinstance(e, ev.FillUnallocated):
                self.unallocated.setdefault(e.order_id, set()).add((e.venue, e.venue_exec_id))
            elif isinstance(e, ev.OrderAccepted):
                accepted.add(e.order_id)
            elif type(e).__name__ in RISK_CHANGES:
                self.risk_changes.append(e)
        for snap in record.orders:
            self._order(order_from_row(SimpleNamespace(**order_row_from_snapshot(snap, self.instance))), accepted)
        for snap in record.children:
            child = child_from_row(SimpleNamespace(**child_row_from_snapshot(snap)))
            order = self.orders.get(child.order_id)
            if order is not None:
                order.children[child.child_id] = child
            elif child.order_id in self.in_doubt or child.in_doubt:
                self._doubt(child.order_id, child.child_id, child.in_doubt)
        for order_id in [o for o in self.executions if o not in self.orders]:
            del self.executions[order_id]  # a finished order's: read back from the tables when named
        for order_id in [o for o in self.unallocated if o not in self.orders]:
            del self.unallocated[order_id]
        self.seen = batch

    def _order(self, order: Order, accepted: set[str]) -> None:
        order_id = order.order_id
        self.max_seq = max(self.max_seq, order.seq)
        before = self.orders.pop(order_id, None)
        self.finished.pop(order_id, None)
        if not order.is_terminal:
            if before is not None:
                order.children = before.children
            elif order_id not in accepted:
                self.stale.add(order_id)  # finished before and reopened: see the module's docstring
            # A reopened order's children in doubt stay noted: the standby knows only the children the log
            # names from now on, and the others are still in doubt if it finishes again (a working order's
            # note is not read: `loaded` lists finished orders only).
            self.orders[order_id] = order
            return
        self.stale.discard(order_id)
        if before is not None:
            for child in before.children.values():
                self._doubt(order_id, child.child_id, child.in_doubt)
        if order.rej_reason is None and order.side is not None and order.ord_type is not None:
            fill = finished_fill(order_id, order.account, order.symbol, order.side.value, order.cum_qty,
                                 order.notional)
            if fill is not None:
                self.finished[order_id] = fill

    def _doubt(self, order_id: str, child_id: str, in_doubt: bool) -> None:
        children = self.in_doubt.setdefault(order_id, set())
        if in_doubt:
            children.add(child_id)
        else:
            children.discard(child_id)
            if not children:
                del self.in_doubt[order_id]

    def _execution(self, order_id: str, child_id: str, venue: str, venue_exec_id: str, exec_id: str,
                   qty: Decimal, px: Decimal, status: str) -> None:
        self.executions.setdefault(order_id, {})[(venue, venue_exec_id)] = [order_id, child_id, exec_id, qty, px,
                                                                           status]

    def _amend(self, order_id: str, venue: str, venue_exec_id: str, status: str, qty: Decimal, px: Decimal) -> None:
        row = self.executions.get(order_id, {}).get((venue, venue_exec_id))
        if row is not None:
            row[3:] = [qty, px, status]

    # --- the takeover ------------------------------------------------------------------------------
    def loaded(self) -> LoadedState:
        """What `Journal.load_open` would read now (the unsent client messages aside: the journal adds
        them). The standby gives its orders away: it is not used after this."""
        state = LoadedState(orders={k: o for k, o in self.orders.items() if k not in self.stale},
                            cl_ord_ids=self.cl_ord_ids, max_seq=self.max_seq,
                            risk_changes=list(self.risk_changes),
                            finished_fills=sum_fills(self.finished.values()),
                            in_doubt_orders=sorted(order_id for order_id, children in self.in_doubt.items()
                                                   if children and order_id not in self.orders))
        for order_id, rows in self.executions.items():
            if order_id in self.stale:
                continue
            for key, (oid, child_id, exec_id, qty, px, status) in rows.items():
                state.venue_exec_ids.add(key)
                if status != "busted":
                    state.fills[key] = (oid, child_id, exec_id, qty, px)
        for order_id, keys in self.unallocated.items():
            if order_id not in self.stale:
                state.venue_exec_ids |= keys
        return state

    def counts(self) -> dict[str, int]:
        """For the standby's log line and tests: how much it holds."""
        return {"orders": len(self.orders), "cl_ord_ids": len(self.cl_ord_ids), "finished": len(self.finished),
                "stale": len(self.stale), "seen": self.seen}

