"""The journal: an append-only log of engine batches, and the tables derived from it.

The engine thread calls `append` once per batch: one row in `journal_log` (an oms.projector.BatchRecord,
pickled as oms.record_codec says: the batch's events, the state of the orders it changed, its client
messages and business messages, which become its audit rows), committed before anything of the batch is
sent. That is the only write on the critical path. A projector thread derives the orders, children, executions, events, ClOrdIDs and the
audit chain from the log (oms.projector), a pass at a time, trailing the log by a few milliseconds
under light load and by whatever one pass takes under heavy load; `sync` projects on demand. A restart
projects what the log holds past the last pass (`catch_up`) and then loads the derived tables.

SQLAlchemy Core only; SQLite (WAL) is the embedded default, PostgreSQL (psycopg 3) the production one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, delete, func, select, type_coerce, update
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from oms import audit, record_codec
from oms import events as ev
from oms.enums import Side
from oms.lease import Lease, LeaseLost, lease_timeouts
from oms.model import IN_DOUBT, Order
from oms.ports import LoadedOrder, LoadedState
from oms.projector import BatchRecord, Projector, read_marks
from oms.rows import _now, child_from_row, child_snapshot, order_from_row, order_snapshot
from oms.schema import (
    _AVG_PX,
    _OPEN_VALUES,
    _TERMINAL_VALUES,
    LOG_DATABASE,
    attached_log_file,
    audit_t,
    children_t,
    cl_ord_ids_t,
    create_schema,
    events_t,
    executions_t,
    journal_log_t,
    journal_marks_t,
    make_engine,
    orders_t,
)

if TYPE_CHECKING:
    from oms.warm import WarmState

log = logging.getLogger(__name__)

# How long the projector lets records gather before a pass (one transaction for all of them), and how
# many log records a pass or a restart's catch-up takes at most (bounds a pass's transaction: on SQLite
# it holds the write lock that the engine's next append waits for).
PROJECT_DELAY_S = 0.005
PASS_RECORDS = 500
# Log records older than this many batches behind the projection are deleted, at most TRIM_ROWS rows and
# about TRIM_BYTES of payload a pass (Journal._trim_log).
KEEP_LOG = 1000
TRIM_ROWS, TRIM_BYTES = 100, 256 << 10
# With fewer than TRIM_ROWS rows due, a pass trims at most this often.
TRIM_EVERY_S = 1.0
PROJECTORS = ("thread", "process", "off")
# SQLite: how long an append waits for the write lock before it fails (as busy_timeout did), and how
# often it tries meanwhile (_insert_sqlite).
SQLITE_BUSY_WAIT_S = 5.0
SQLITE_LOCK_POLL_S = 0.0002
# SQLite: how often a projection pass checkpoints the log's WAL (Journal._checkpoint_log).
CHECKPOINT_S = 1.0


class JournalRefused(Exception):
    """What a batch holds cannot be stored (and never will be): not a database outage."""


def _driver_rows(conn: Any, stmt: Any) -> list[tuple[Any, ...]]:
    """Every row of `stmt` as the driver's own tuples, for the two reads of a restart that grow with
    the journal (100,000 orders: building SQLAlchemy Row objects was a third of their time). Only for
    columns that need no result processing: strings, and decimals read as text."""
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


class Journal:
    """The engine's journal (the oms.ports.JournalPort it is wired with). `append` is called from the
    engine thread only; the lookups too. `append_audit` and `sync` may be called from any thread."""

    def __init__(self, engine: SAEngine, instance: str, projector: str = "thread") -> None:
        self.engine = engine
        self.instance = instance
        # Who projects what `append` adds (see PROJECTORS): a thread of this process, a process of its
        # own (`python -m oms.projector_process`), or nobody until `sync`, `catch_up` or `close`.
        if projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {', '.join(PROJECTORS)}, not {projector!r}")
        self.projector = projector
        self._child: subprocess.Popen[bytes] | None = None
        # The CPUs the projector process runs on (empty: those of the thread that starts it)
        self.child_cpus: frozenset[int] = frozenset()
        # Last batch appended to the log by this journal (read from the log by a load).
        self._batch = 0
        # The engine thread's connection for appends, kept open (see _append_row).
        self._raw: Any = None
        self._append_sql = ""
        # High availability (oms.lease): with a lease, an append stores nothing unless this engine still
        # holds the lease's epoch, and `on_fenced` is told before LeaseLost is raised (it stops the process:
        # an engine that lost the lease must not go on deciding, nor answer its clients).
        self.lease: Lease | None = None
        self.on_fenced: Callable[[LeaseLost], None] | None = None
        # A standby's state, kept from the log while it followed it (oms.warm): `load_open` starts from it.
        self.warm: WarmState | None = None
        # Records appended but not yet projected, and the last batch the derived tables hold; guarded
        # by _cv. _project_lock makes one pass at a time (the thread's, a sync's or a catch-up's).
        self._cv = threading.Condition()
        self._pending: list[tuple[int, BatchRecord]] = []
        self._projected = 0
        self._project_lock = threading.Lock()
        self._projectors: dict[str, Projector] = {}
        self._thread: threading.Thread | None = None
        self._closing = False
        self.projection_error: BaseException | None = None
        self._checkpointed = -math.inf
        self._trimmed = 0  # the log's rows up to this batch are deleted (_trim_log)
        self._trim_at = -math.inf  # when _trim_log last looked (never: monotonic() may be small, just after boot)

    @classmethod
    def open(cls, url: str, instance: str) -> Journal:
        return cls(make_engine(url), instance)

    def create_schema(self) -> None:
        create_schema(self.engine)

    @staticmethod
    def refuses_content(exc: BaseException) -> bool:
        """Did the database refuse what a commit wrote (it would refuse it again), as opposed to being
        unreachable? Data and integrity errors, and values that could not even be sent."""
        from sqlalchemy import exc as sa_exc

        if isinstance(exc, JournalRefused):
            return True
        if isinstance(exc, sa_exc.DBAPIError):
            return isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError)
        if isinstance(exc, sa_exc.StatementError | UnicodeError):
            return True
        try:  # psycopg's pipeline raises its own errors unwrapped
            import psycopg
        except ImportError:
            return False
        return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)

    # --- the critical path: one append per batch (engine thread) ------------------------------------
    def append(self, events: list[ev.Event], dirty: Iterable[Order], client_messages: list[Any] | None = None,
               inbound: Sequence[Any] = (), outbound: Sequence[Any] = ()) -> int:
        """Make a batch durable: one log row, committed when this returns. Raises on failure; nothing of
        the batch is then stored. Returns the batch's number in the log (0: nothing to store).

        `dirty` are the orders the batch changed (their state as of now is recorded), `client_messages`
        what it will send to clients (resent after a crash before the send), `inbound`/`outbound` its
        commands and everything it sends (their business messages become audit rows)."""
        orders = {o.order_id: o for o in dirty}
        audited = audit.business(inbound, outbound) if inbound or outbound else []
        if not events and not orders and not client_messages and not audited:
            return 0  # e.g. a batch of market data only: nothing to make durable
        now = _now()
        children = []
        seen: set[str] = set()
        for e in events:
            child_id = getattr(e, "child_id", None)
            if child_id is not None and child_id not in seen:
                order = orders.get(getattr(e, "order_id", ""))
                child = order.children.get(child_id) if order is not None else None
                if child is not None:
                    seen.add(child_id)
                    children.append(child_snapshot(child))
        for o in orders.values():
            o.updated_at = now
        record = BatchRecord(now, events, [order_snapshot(o) for o in orders.values()], children,
                             client_messages or [], audited)
        try:
            payload = record_codec.encode(record)
        except Exception as exc:  # something of the batch cannot be stored: it would fail again
            raise JournalRefused(f"batch cannot be journaled: {exc}") from exc
        batch = self._batch + 1
        self._append_row(batch, payload)
        self._batch = batch
        if self.projector == "process":
            self._wake_child()
            return batch
        with self._cv:
            self._pending.append((batch, record))
            self._cv.notify_all()
        if self._thread is None and self.projector == "thread":
            self._start_projector()
        return batch

    def _append_row(self, batch: int, payload: bytes) -> None:
        # The driver's own connection and cursor: one INSERT and a COMMIT, nothing of SQLAlchemy's
        # per-statement work on the path every order waits for.
        lease = self.lease
        if self._raw is None:
            raw = self.engine.raw_connection()
            driver = raw.driver_connection
            assert driver is not None  # a connection just checked out of the pool
            # Out of the pool: its settings below (autocommit; on SQLite its busy timeout) must never reach
            # anyone else's use of the connection.
            raw.detach()
            if self.engine.dialect.name == "sqlite":
                # Autocommit: the INSERT is its own transaction, without the BEGIN and COMMIT statements the
                # driver would otherwise prepare and run around it for every append. This connection waits
                # for the write lock itself (_insert_sqlite).
                driver.isolation_level = None
                cur = raw.cursor()
                cur.execute("PRAGMA busy_timeout=0")
                # No checkpoints on this connection: SQLite runs one inside the commit that pushes the
                # WAL past 1,000 pages (copying it into the file, then syncing), on the path every order
                # waits for; projection passes do it instead (_checkpoint_log).
                cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.close()
            else:
                # PostgreSQL (psycopg), autocommit as well: the INSERT is its own transaction, one round trip,
                # where the driver's implicit transaction made three (BEGIN, INSERT, COMMIT). Durable when it
                # returns, as a COMMIT (synchronous_commit). The fenced insert (HA) reads the lease row FOR
                # SHARE for that statement's transaction, so a takeover still waits for an append in flight.
                driver.autocommit = True
            self._raw = raw
            mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
            self._append_sql = (f"INSERT INTO {journal_log_t.name} (instance, batch, payload) "
                                f"VALUES ({mark}, {mark}, {mark})")
            if lease is not None:
                self._append_sql = lease.fenced_insert(self.engine.dialect.paramstyle)[0]
                # The fenced insert holds the lease row FOR SHARE until its transaction ends; autocommitted,
                # that is the statement's end. Should a transaction ever be left open on this connection
                # (a primary paused inside it would block every takeover), the server ends it.
                cur = raw.cursor()
                idle = lease_timeouts(lease.lease_s)["idle_in_transaction_session_timeout"]
                cur.execute(f"SET idle_in_transaction_session_timeout = {idle}")
                cur.close()
                raw.commit()
        raw = self._raw
        params: tuple[Any, ...] = (self.instance, batch, payload)
        if lease is not None:
            params += lease.fenced_insert(self.engine.dialect.paramstyle)[1]
        try:
            if self.engine.dialect.name == "sqlite":  # never leased: HA needs PostgreSQL (oms.lease)
                self._insert_sqlite(raw, params)
            else:
                cur = raw.cursor()
                try:
                    cur.execute(self._append_sql, params)
                    stored = cur.rowcount
                finally:
                    cur.close()
                if lease is not None and stored != 1:
                    raw.rollback()
                    lost = LeaseLost(f"journal append refused: {lease.holder} no longer holds epoch {lease.epoch} "
                                     f"of the lease of {lease.name}")
                    if self.on_fenced is not None:
                        self.on_fenced(lost)
                    raise lost
                raw.commit()
        except BaseException:
            self._raw = None
            try:
                raw.rollback()
                raw.close()
            except Exception:  # the connection is what failed: let the pool drop it
                raw.invalidate()
            raise

    def _insert_sqlite(self, raw: Any, params: tuple[Any, ...]) -> None:
        """The append on SQLite, waiting for the database's write lock by polling it every 0.2 ms.

        A projection pass holds that lock for a few milliseconds. SQLite's own busy handler sleeps 1, 2,
        5, 10... ms between tries, so an append that came during a pass waited up to twice as long as
        the pass: bench/journal_bench.py measured the append's p99 at 8.8 ms with the projector process
        running and 0.7 ms without it."""
        deadline = time.monotonic() + SQLITE_BUSY_WAIT_S
        while True:
            cur = raw.cursor()
            try:
                cur.execute(self._append_sql, params)  # committed when it returns (autocommit: _append_row)
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            finally:
                cur.close()
            time.sleep(SQLITE_LOCK_POLL_S)

    def commit(self, events: list[ev.Event], dirty: Iterable[Order], client_messages: list[Any] | None = None,
               inbound: Sequence[Any] = (), outbound: Sequence[Any] = ()) -> None:
        """`append`, then `sync`: the batch is in the derived tables when this returns (tools, tests and
        benchmarks that write a journal; the engine appends and lets the projector trail)."""
        self.append(events, dirty, client_messages, inbound, outbound)
        self.sync()

    # --- the derived tables -------------------------------------------------------------------------
    def _start_projector(self) -> None:
        self._closing = False
        self._thread = threading.Thread(target=self._project_loop, name="oms-projector", daemon=True)
        self._thread.start()

    def _project_loop(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
            time.sleep(PROJECT_DELAY_S)  # let a burst gather: one pass for all of it
            try:
                self.sync()
                self.projection_error = None
            except Exception as exc:  # the database is away: the log has the records, retry
                if self.projection_error is None:
                    log.error("projecting the journal log failed (retrying): %s", exc)
                self.projection_error = exc
                time.sleep(0.5)

    def _wake_child(self) -> None:
        """Tell the projector process there is more (one byte on its stdin; it reads the log itself).
        A full pipe means it has been told already; a dead one is started again."""
        child = self._child
        if child is None or child.poll() is not None:
            if child is not None:
                log.error("projector process exited (%s): starting another", child.returncode)
            child = self._child = subprocess.Popen(
                [sys.executable, "-m", "oms.projector_process", self.instance],
                stdin=subprocess.PIPE, env={**os.environ, "FIXOMS_JOURNAL_URL":
                                            self.engine.url.render_as_string(hide_password=False)})
            if self.child_cpus:  # not on the engine thread's CPUs, whose mask it inherited
                os.sched_setaffinity(child.pid, self.child_cpus)
            assert child.stdin is not None
            os.set_blocking(child.stdin.fileno(), False)
        assert child.stdin is not None
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(child.stdin.fileno(), b".")

    def sync(self) -> None:
        """Project everything appended so far, now, on this thread. Raises if the database refuses."""
        if self.projector == "process":
            self.catch_up()  # from the log itself: the other process may be half-way; the marks lock orders us
            return
        with self._project_lock:
            while True:
                with self._cv:
                    records = [r for r in self._pending[:PASS_RECORDS] if r[0] > self._projected]
                    del self._pending[:PASS_RECORDS]
                if not records:
                    return
                try:
                    self._project(records)
                except BaseException:
                    with self._cv:
                        self._pending[:0] = records
                    raise

    def _lock_marks(self, conn: Any) -> tuple[int, int]:
        """(projected, sent), with the instance's marks row locked until `conn`'s transaction ends: every
        writer of derived rows (a projection pass in any process, an operator's audit row) takes it first,
        so they follow each other (PostgreSQL: the row lock; SQLite: the database's write lock)."""
        if conn.dialect.update_returning:  # one round trip (PostgreSQL; SQLite from 3.35)
            found = conn.execute(_LOCK_MARKS_RETURNING, {"b_instance": self.instance}).first()
            if found is None:
                return read_marks(conn, self.instance)  # inserts the row: the lock is taken as well
            return int(found.projected), int(found.sent)
        locked = conn.execute(_LOCK_MARKS, {"b_instance": self.instance})
        if locked.rowcount == 0:
            return read_marks(conn, self.instance)
        row = conn.execute(_READ_MARKS, {"instance": self.instance}).one()
        return int(row.projected), int(row.sent)

    def _project(self, records: list[tuple[int, BatchRecord]]) -> None:
        """One pass, one transaction (caller holds _project_lock). Records another projector wrote
        already (the mark says so) are skipped.

        If the pass conflicts with rows already there, it is tried once more leniently (see
        Projector.prepare) and the conflict is logged."""
        projector = self._projector_for(self.engine.dialect)
        for lenient in (False, True):
            # Rows are made before the transaction, which on SQLite holds the lock appends wait for.
            ready = projector.prepare(records, lenient)
            try:
                with self.engine.begin() as conn:
                    projected, _sent = self._lock_marks(conn)
                    todo = [r for r in records if r[0] > projected]
                    if not todo:
                        last = projected
                    else:
                        if len(todo) < len(records):  # another projector wrote some of them meanwhile
                            ready = projector.prepare(todo, lenient)
                        last, _head = projector.execute(conn, ready, audit_head(conn, self.instance))
            except IntegrityError as exc:
                if lenient:
                    raise
                log.error("projecting log batches %d..%d conflicts with rows already in the journal's tables "
                          "(%s): projecting them again, skipping conflicting execution and ClOrdID rows (the "
                          "log keeps them)", records[0][0], records[-1][0],
                          str(exc.orig).splitlines()[0] if exc.orig else exc)
                continue
            with self._cv:
                self._projected = max(self._projected, last)
                self._cv.notify_all()
            self._trim_log(last)
            self._checkpoint_log()
            return

    def _trim_log(self, last: int) -> None:
        """Delete the log's rows more than KEEP_LOG batches behind the projection, at most TRIM_BYTES of
        them a pass, in a transaction of their own: on SQLite that transaction holds the log file's write
        lock, which the engine's append waits for. Deleting a thousand rows at once held it for 6-51 ms,
        and a hundred rows of a closed loop's batches (50 KB each) for 25 ms. What a pass leaves, the
        next ones delete: at 20 passes a second that is about 5 MB/s, more than the log grows."""
        upto = last - KEEP_LOG
        if self._trimmed >= upto:
            return
        # Fewer rows due than a trim takes: not at every pass (each costs a read and a transaction), at most
        # every TRIM_EVERY_S; with TRIM_ROWS or more due, at every pass.
        now = time.monotonic()
        if upto - self._trimmed < TRIM_ROWS and now - self._trim_at < TRIM_EVERY_S:
            return
        self._trim_at = now
        with self.engine.connect() as conn:
            sizes = conn.execute(_TRIM_SIZES, {"instance": self.instance, "after": self._trimmed, "upto": upto,
                                               "limit": TRIM_ROWS}).all()
        if not sizes:  # deleted already (by another projector, or before a restart)
            self._trimmed = upto
            return
        end, size = self._trimmed, 0
        for batch, length in sizes:
            end, size = int(batch), size + int(length or 0)
            if size >= TRIM_BYTES:
                break
        with self.engine.begin() as conn:
            conn.execute(_TRIM, {"instance": self.instance, "upto": end})
        self._trimmed = end

    def _checkpoint_log(self) -> None:
        """SQLite: copy the log's WAL into its file, at most every CHECKPOINT_S, from the projecting
        side (the engine's append connection never does: see _append_row). PASSIVE: it waits for no
        reader or writer, so an append goes on meanwhile."""
        now = time.monotonic()
        if now - self._checkpointed < CHECKPOINT_S or attached_log_file(self.engine) is None:
            return
        self._checkpointed = now
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA {LOG_DATABASE}.wal_checkpoint(PASSIVE)")

    def _projector_for(self, dialect: Any) -> Projector:
        projector = self._projectors.get(dialect.name)
        if projector is None:
            projector = self._projectors[dialect.name] = Projector(self.instance, dialect)
        return projector

    def catch_up(self) -> None:
        """Project the log past the derived tables' mark (after a crash, or what the projector had not
        written yet) up to its last batch: what a restart does before it loads, and `sync` in a process whose
        projector is a process of its own."""
        with self._project_lock:
            with self.engine.begin() as conn:
                projected, _sent = read_marks(conn, self.instance)
                last = int(conn.execute(select(func.coalesce(func.max(journal_log_t.c.batch), 0))
                           .where(journal_log_t.c.instance == self.instance)).scalar() or 0)
            self._batch = max(self._batch, last)
            with self._cv:
                self._projected = max(self._projected, projected)
                self._pending = [r for r in self._pending if r[0] > self._projected]
            self._project_log(projected, last)
            with self._cv:
                self._pending = [r for r in self._pending if r[0] > self._projected]

    def project_new(self) -> None:
        """The projector process's pass: project what the log holds past the last batch this journal
        projected, reading the marks only the first time. `catch_up` reads the marks and the log's last
        batch first, in a transaction of its own - three statements more a pass, round trips on
        PostgreSQL. A mark another projector moved meanwhile is safe: `_project` skips, under the marks'
        lock, what it finds projected already."""
        with self._project_lock:
            if not self._projected:
                with self.engine.begin() as conn:
                    projected, _sent = read_marks(conn, self.instance)
                with self._cv:
                    self._projected = max(self._projected, projected)
            self._project_log(self._projected)

    def _project_log(self, after: int, upto: int | None = None) -> None:
        """Project the log's records past batch `after`, PASS_RECORDS a pass: up to batch `upto`, or (None)
        until a read finds fewer than a pass takes. The caller holds _project_lock."""
        while upto is None or after < upto:
            with self.engine.connect() as conn:
                records = read_log(conn, self.instance, after, PASS_RECORDS)
            if not records:
                return
            self._project(records)
            after = records[-1][0]
            if upto is None and len(records) < PASS_RECORDS:
                return

    def mark_sent(self) -> None:
        """Everything appended so far was sent (a clean stop): a restart resends nothing."""
        with self.engine.begin() as conn:
            self._lock_marks(conn)
            conn.execute(update(journal_marks_t).where(journal_marks_t.c.instance == self.instance)
                         .values(sent=self._batch))

    def close(self, sent: bool = True) -> None:
        """Stop the projector after a last pass; `sent`: the last batch went out (mark_sent)."""
        thread = self._thread
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if thread is not None:
            thread.join(10)
            self._thread = None
        child, self._child = self._child, None
        if child is not None:
            assert child.stdin is not None
            with contextlib.suppress(OSError):
                child.stdin.close()  # end of input: it makes a last pass and exits
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                log.error("projector process did not exit: killing it (the next start projects the rest)")
                child.kill()
                child.wait()
        try:
            self.sync()
            if sent and self._batch:
                self.mark_sent()
        except Exception as exc:  # the log has it: the next start projects it
            log.error("journal not fully projected at close (the next start will): %s", exc)
        if self._raw is not None:
            with suppress(Exception):
                self._raw.close()
            self._raw = None

    def load(self) -> LoadedState:
        """Every order this instance journaled, finished ones too (tools and tests; the engine starts
        from `load_open`)."""
        state = LoadedState()
        self.catch_up()
        with self.engine.connect() as conn:
            for r in conn.execute(select(orders_t).where(orders_t.c.instance == self.instance)):
                state.orders[r.order_id] = order_from_row(r)
            for r in conn.execute(select(children_t)):
                order = state.orders.get(r.order_id)
                if order is not None:
                    order.children[r.child_id] = child_from_row(r)
            for r in conn.execute(select(cl_ord_ids_t)):
                state.cl_ord_ids[(r.session, r.cl_ord_id)] = r.order_id
            for r in conn.execute(select(executions_t)):
                _add_execution(state.venue_exec_ids, state.fills, r)
            for keys in unallocated_fills(conn, self.instance).values():
                state.venue_exec_ids |= keys
            state.risk_changes = risk_changes(conn, self.instance)
            state.max_seq = max_seq(conn, self.instance)
            self._load_unsent(conn, state)
        return state

    def load_open(self) -> LoadedState:
        """What the engine needs before it takes a message: the working orders with their children and
        executions, every used ClOrdID, the order counter, operator risk changes, the client messages of
        the last batch if it may not have been sent, and the fills of finished orders summed per account,
        symbol and side (risk's positions and filled notional). Finished orders stay in the journal:
        `load_order` and `order_id_of_child` read one when something names it.

        With `warm` set (a standby that followed the log, oms.warm), the tables are still brought up to
        date (catch_up), but the state is the standby's, moved on by the log records it had not read."""
        self.catch_up()
        if self.warm is not None:
            warm_state = self._load_warm(self.warm)
            self.warm = None
            if warm_state is not None:
                return warm_state
        state = LoadedState()
        with self.engine.connect() as conn:
            state.orders, executions = working_rows(conn, self.instance)
            for r in executions:
                _add_execution(state.venue_exec_ids, state.fills, r)
            for order_id, keys in unallocated_fills(conn, self.instance).items():
                if order_id in state.orders:  # a finished order's: with it, when it is read back
                    state.venue_exec_ids |= keys
            state.cl_ord_ids = cl_ord_ids(conn)
            state.finished_fills = sum_fills(finished_fill_rows(conn, self.instance))
            state.in_doubt_orders = sorted({order_id for order_id, _child in in_doubt_children(conn, self.instance)})
            state.risk_changes = risk_changes(conn, self.instance)
            state.max_seq = max_seq(conn, self.instance)
            self._load_unsent(conn, state)
        return state

    def _load_warm(self, warm: WarmState) -> LoadedState | None:
        """The warm state moved on by the log past it; None if the log no longer holds all of that (the
        standby was too far behind when it took over: the tables are read instead)."""
        with self.engine.connect() as conn:
            while records := read_log(conn, self.instance, warm.seen, PASS_RECORDS):
                if records[0][0] != warm.seen + 1:
                    log.warning("the standby's order state stops at batch %d and the log now starts at %d: "
                                "reading the tables instead", warm.seen, records[0][0])
                    return None
                for batch, record in records:
                    warm.apply(batch, record)
            state = warm.loaded()
            self._load_unsent(conn, state)
        for order_id in sorted(warm.stale):
            # Reopened after the standby had let it go (a bust of a finished order): its executions are
            # the tables', read now that they are up to date.
            loaded = self.load_order(order_id)
            if loaded is not None and not loaded.order.is_terminal:
                state.orders[order_id] = loaded.order
                state.venue_exec_ids.update(loaded.venue_exec_ids)
                state.fills.update(loaded.fills)
        return state

    def _load_unsent(self, conn: Any, state: LoadedState) -> None:
        """The client messages of the last batch if it may not have been sent (and that batch's number)."""
        _projected, sent = read_marks(conn, self.instance)
        state.last_batch = self._batch
        if self._batch > sent:
            # The engine sends a batch before it appends the next: only the last one may be unsent.
            payload = conn.execute(select(journal_log_t.c.payload).where(journal_log_t.c.instance == self.instance)
                                   .where(journal_log_t.c.batch == self._batch)).scalar()
            if payload is not None:
                state.unsent.extend(record_codec.decode(payload).client_messages)

    # --- finished orders, read when something names them (engine thread) --------------------------
    def load_order(self, order_id: str) -> LoadedOrder | None:
        """One of this instance's orders with its children and executions; None if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(orders_t).where(orders_t.c.order_id == order_id)
                               .where(orders_t.c.instance == self.instance)).first()
            if row is None:
                return None
            order = order_from_row(row)
            for r in conn.execute(select(children_t).where(children_t.c.order_id == order_id)):
                order.children[r.child_id] = child_from_row(r)
            seen: set[tuple[str, str]] = set()
            fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]] = {}
            for r in conn.execute(select(executions_t).where(executions_t.c.order_id == order_id)):
                _add_execution(seen, fills, r)
            seen.update(*unallocated_fills(conn, self.instance, order_id).values())
        return LoadedOrder(order, frozenset(seen), fills)

    def order_id_of_child(self, venue_cl_ord_id: str) -> str | None:
        """The order whose child has this venue ClOrdID (the child's id, one of its cancels' ids, or the id
        of its last amend)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(children_t.c.order_id).where(children_t.c.child_id == venue_cl_ord_id)
                                 ).scalar()
            for column in (children_t.c.cancel_id, children_t.c.venue_cl_ord_id):
                if found is None:
                    found = conn.execute(select(children_t.c.order_id).where(column == venue_cl_ord_id)
                                         .limit(1)).scalar()
            return found

    # --- audit -------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, entries: Sequence[audit.Entry] = (),
                     now: datetime | None = None) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """A write transaction that starts by appending `entries` to the audit chain, after the marks
        lock (see _lock_marks): projection passes of any process and operator rows make one chain."""
        now = now or _now()
        written: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            self._lock_marks(conn)
            if entries:
                rows = [{"seq": r.seq, "ts": r.ts, "who": r.who, "kind": r.kind, "summary": r.summary,
                         "prev_hash": r.prev_hash, "hash": r.hash, "instance": self.instance}
                        for r in audit.chain(audit_head(conn, self.instance), entries, now)]
                self._projector_for(conn.dialect).statement("audit").execute(conn, rows)
                written.extend(rows)
            yield conn, written

    def append_audit(self, who: str, kind: str, summary: dict[str, Any]) -> int:
        """Add one row (an operator action) to the chain, in its own transaction; returns its seq.

        Thread-safe against the projector's passes. While an engine runs, only its process writes the
        chain (other processes go through its admin socket)."""
        with self._transaction([audit.Entry(who, kind, summary)]) as (_conn, written):
            pass
        return int(written[-1]["seq"])

    def events_for(self, order_id: str) -> list[ev.Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events_t.c.kind, events_t.c.payload)
                .where(events_t.c.order_id == order_id)
                .order_by(events_t.c.seq)
            )
            return [ev.from_payload(r.kind, r.payload) for r in rows]


def _add_execution(seen: set[tuple[str, str]], fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]],
                   r: Any) -> None:
    seen.add((r.venue, r.venue_exec_id))
    if r.status != "busted":
        fills[(r.venue, r.venue_exec_id)] = (r.order_id, r.child_id, r.exec_id, r.last_qty, r.last_px)


# --- the reads of a restart (Journal.load_open) and of a standby's first look (oms.warm) ---------------
def working_rows(conn: Any, instance: str) -> tuple[dict[str, Order], list[Any]]:
    """The working orders with their children, and the execution rows of those orders."""
    orders: dict[str, Order] = {}
    working = (select(orders_t.c.order_id).where(orders_t.c.instance == instance)
               .where(orders_t.c.status.in_(_OPEN_VALUES)))
    for r in conn.execute(select(orders_t).where(orders_t.c.instance == instance)
                          .where(orders_t.c.status.in_(_OPEN_VALUES))):
        orders[r.order_id] = order_from_row(r)
    if not orders:
        return orders, []
    for r in conn.execute(select(children_t).where(children_t.c.order_id.in_(working))):
        order = orders.get(r.order_id)
        if order is not None:
            order.children[r.child_id] = child_from_row(r)
    return orders, list(conn.execute(select(executions_t).where(executions_t.c.order_id.in_(working))))


def cl_ord_ids(conn: Any) -> dict[tuple[str, str], str]:
    """Every ClOrdID ever used, finished orders' too: reading them costs less than a journal read per new
    order would (each one is a new ClOrdID to check for a duplicate)."""
    # (one fetchall instead of a fetchone per row, a third of the time for 100,000 rows)
    return {(session, cl_ord_id): order_id for session, cl_ord_id, order_id
            in _driver_rows(conn, select(cl_ord_ids_t.c.session, cl_ord_ids_t.c.cl_ord_id, cl_ord_ids_t.c.order_id))}


# (order id, (account, symbol, side), qty, value) of a finished order's fills
FinishedFill = tuple[str, tuple[str, str, Side], Decimal, Decimal]


def finished_fill(order_id: str, account: str, symbol: str, side: str, cum: Decimal, notional: Decimal
                  ) -> FinishedFill | None:
    """What a finished order filled, valued as risk values it (CumQty x AvgPx); None if nothing."""
    if not cum:
        return None
    return order_id, (account, symbol, Side(side)), cum, cum * (notional / cum).quantize(_AVG_PX)  # Order.avg_px


def finished_fill_rows(conn: Any, instance: str) -> Iterator[FinishedFill]:
    """Each finished order that filled, as `finished_fill` gives it."""
    # Raw text, not the Dec type: this reads one row per finished order that ever filled, the one part of
    # a restart that still grows with the journal, so it skips the per-column processing. Filters as
    # risk's rebuild did: accepted orders with a side and type, never rejected ones.
    text = String()
    q = (select(orders_t.c.order_id, orders_t.c.account, orders_t.c.symbol, orders_t.c.side,
                type_coerce(orders_t.c.cum_qty, text), type_coerce(orders_t.c.notional, text))
         .where(orders_t.c.instance == instance).where(orders_t.c.status.in_(_TERMINAL_VALUES))
         .where(orders_t.c.rej_reason.is_(None)).where(orders_t.c.side.is_not(None))
         .where(orders_t.c.ord_type.is_not(None)).where(orders_t.c.cum_qty != "0"))
    for order_id, account, symbol, side, cum_text, notional_text in _driver_rows(conn, q):
        fill = finished_fill(order_id, account, symbol, side, Decimal(cum_text), Decimal(notional_text))
        if fill is not None:
            yield fill


def sum_fills(fills: Iterable[FinishedFill]) -> dict[tuple[str, str, Side], tuple[Decimal, Decimal]]:
    """(account, symbol, side) -> (qty, value) over finished orders' fills (LoadedState.finished_fills)."""
    sums: dict[tuple[str, str, Side], list[Decimal]] = {}
    for _order_id, key, qty, value in fills:
        total = sums.get(key)
        if total is None:
            total = sums[key] = [Decimal(0), Decimal(0)]
        total[0] += qty
        total[1] += value
    return {key: (q, v) for key, (q, v) in sums.items()}


def in_doubt_children(conn: Any, instance: str) -> list[tuple[str, str]]:
    """(order id, child id) of each child in doubt of a finished order: the engine reads such an order back
    at start (its venue still has to tell the child's fate)."""
    return [(r.order_id, r.child_id) for r in conn.execute(
        select(children_t.c.order_id, children_t.c.child_id)
        .join(orders_t, orders_t.c.order_id == children_t.c.order_id)
        .where(children_t.c.status == IN_DOUBT.value)
        .where(orders_t.c.instance == instance)
        .where(orders_t.c.status.in_(_TERMINAL_VALUES)))]


def unallocated_fills(conn: Any, instance: str, order_id: str | None = None) -> dict[str, set[tuple[str, str]]]:
    """(venue, venue ExecID) of each venue fill no client order could take (FillUnallocated: a late fill of a
    child in doubt, an overfill), by order (one order's with `order_id`). The executions table has no row
    for them; a venue that repeats one must still find it seen after a restart, as the engine that
    journaled it did, or it would be applied then."""
    query = (select(events_t.c.order_id, events_t.c.payload).where(events_t.c.instance == instance)
             .where(events_t.c.kind == "FillUnallocated"))
    if order_id is not None:
        query = query.where(events_t.c.order_id == order_id)
    out: dict[str, set[tuple[str, str]]] = {}
    for r in conn.execute(query):
        e = ev.from_payload("FillUnallocated", r.payload)
        assert isinstance(e, ev.FillUnallocated)
        out.setdefault(r.order_id, set()).add((e.venue, e.venue_exec_id))
    return out


RISK_CHANGES = ("TradingStateChanged", "RiskLimitChanged")


def risk_changes(conn: Any, instance: str) -> list[ev.Event]:
    """Operator changes to risk, oldest first."""
    return [ev.from_payload(r.kind, r.payload) for r in conn.execute(
        select(events_t.c.kind, events_t.c.payload)
        .where(events_t.c.instance == instance)
        .where(events_t.c.kind.in_(RISK_CHANGES))
        .order_by(events_t.c.seq))]


def max_seq(conn: Any, instance: str) -> int:
    """The order counter: the highest order number the instance gave."""
    return int(conn.execute(select(func.max(orders_t.c.seq)).where(orders_t.c.instance == instance)).scalar() or 0)


# The statements every projection pass runs, built once: building a Core statement and its cache key again for
# each pass cost more than running it (a pass of a few records took ~3 ms, most of it in SQLAlchemy).
_LOCK_MARKS = (update(journal_marks_t).where(journal_marks_t.c.instance == bindparam("b_instance"))
               .values(projected=journal_marks_t.c.projected))
_LOCK_MARKS_RETURNING = _LOCK_MARKS.returning(journal_marks_t.c.projected, journal_marks_t.c.sent)
_READ_MARKS = (select(journal_marks_t.c.projected, journal_marks_t.c.sent)
               .where(journal_marks_t.c.instance == bindparam("instance")))
_TRIM_SIZES = (select(journal_log_t.c.batch, func.length(journal_log_t.c.payload))
               .where(journal_log_t.c.instance == bindparam("instance"))
               .where(journal_log_t.c.batch > bindparam("after")).where(journal_log_t.c.batch <= bindparam("upto"))
               .order_by(journal_log_t.c.batch).limit(bindparam("limit")))
_TRIM = (delete(journal_log_t).where(journal_log_t.c.instance == bindparam("instance"))
         .where(journal_log_t.c.batch <= bindparam("upto")))
_READ_LOG = (select(journal_log_t.c.batch, journal_log_t.c.payload)
             .where(journal_log_t.c.instance == bindparam("instance"))
             .where(journal_log_t.c.batch > bindparam("after"))
             .order_by(journal_log_t.c.batch).limit(bindparam("limit")))
_AUDIT_HEAD = (select(audit_t.c.seq, audit_t.c.hash).where(audit_t.c.instance == bindparam("instance"))
               .order_by(audit_t.c.seq.desc()).limit(1))


def read_log(conn: Any, instance: str, after: int, limit: int) -> list[tuple[int, BatchRecord]]:
    """The log's records past batch `after`, oldest first, at most `limit`."""
    rows = conn.execute(_READ_LOG, {"instance": instance, "after": after, "limit": limit}).all()
    return [(int(batch), record_codec.decode(payload)) for batch, payload in rows]


def audit_head(conn: Any, instance: str) -> tuple[int, str] | None:
    row = conn.execute(_AUDIT_HEAD, {"instance": instance}).first()
    return (int(row.seq), str(row.hash)) if row is not None else None
