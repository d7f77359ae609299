"""The journal: append-only events plus the projections (orders, children, executions) they imply,
written in one transaction per engine batch (group commit). Restart loads the projections.

SQLAlchemy Core only; SQLite (WAL) is the embedded default, PostgreSQL (psycopg 3) the production one.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    type_coerce,
)
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from oms import audit
from oms import events as ev
from oms.access import Credential, hash_password
from oms.enums import TERMINAL, OrdRejReason, OrdStatus, OrdType, Side, TimeInForce
from oms.model import IN_DOUBT, Child, Order

log = logging.getLogger(__name__)


class Dec(TypeDecorator[Decimal]):
    """Exact decimals on every backend (SQLite's NUMERIC would round-trip through float)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


metadata = MetaData()

events_t = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("instance", String(32), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("order_id", String(64), index=True),
    Column("payload", JSON, nullable=False),
)

orders_t = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("instance", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("session", String(128), nullable=False, index=True),
    Column("account", String(64), nullable=False, index=True),
    Column("cl_ord_id", String(128), nullable=False),
    Column("orig_cl_ord_id", String(128)),
    Column("symbol", String(32), nullable=False, index=True),
    Column("side", String(1)),
    Column("ord_type", String(1)),
    Column("time_in_force", String(1), nullable=False),
    Column("order_qty", Dec, nullable=False),
    Column("price", Dec),
    Column("stop_px", Dec),
    Column("status", String(1), nullable=False, index=True),
    Column("pending", String(1)),
    Column("pending_cl_ord_id", String(128)),
    Column("pending_qty", Dec),
    Column("pending_price", Dec),
    Column("pending_ord_type", String(1)),
    Column("pending_tif", String(1)),
    Column("expire_time", DateTime(timezone=True)),
    Column("max_floor", Dec),
    Column("ex_destination", String(64)),
    Column("target_strategy", String(32)),
    Column("arrival_mid", Dec),
    Column("held", Boolean, nullable=False, default=False),
    Column("expiring", Boolean, nullable=False, default=False),
    Column("cum_qty", Dec, nullable=False),
    Column("notional", Dec, nullable=False),
    Column("text", Text, nullable=False),
    Column("rej_reason", Integer),
    Column("report_seq", Integer, nullable=False),
    Column("child_seq", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

children_t = Table(
    "children",
    metadata,
    Column("child_id", String(80), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("venue", String(64), nullable=False),
    Column("qty", Dec, nullable=False),
    Column("price", Dec),
    Column("ord_type", String(1), nullable=False),
    Column("time_in_force", String(1), nullable=False),
    Column("cum_qty", Dec, nullable=False),
    Column("notional", Dec, nullable=False),
    Column("status", String(1), nullable=False),
    Column("venue_order_id", String(128), nullable=False),
    Column("cancel_id", String(96), nullable=False),
    Column("text", Text, nullable=False),
)

executions_t = Table(
    "executions",
    metadata,
    Column("exec_id", String(80), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("child_id", String(80), nullable=False),
    Column("venue", String(64), nullable=False),
    Column("venue_exec_id", String(128), nullable=False),
    Column("last_qty", Dec, nullable=False),
    Column("last_px", Dec, nullable=False),
    Column("status", String(12), nullable=False, default="ok"),  # ok | busted | corrected
    Column("ts", DateTime(timezone=True), nullable=False),
    UniqueConstraint("venue", "venue_exec_id", name="uq_executions_venue_exec"),
)

# What each batch sent to clients, so messages committed but not yet sent when the process died go
# out (PossResend) after a restart. A batch is marked sent by the next commit.
outbox_t = Table(
    "outbox",
    metadata,
    Column("batch", BigInteger, primary_key=True, autoincrement=False),
    Column("instance", String(32), primary_key=True),
    Column("payload", LargeBinary, nullable=False),
    Column("sent", Boolean, nullable=False, default=False),
)

credentials_t = Table(
    "credentials",
    metadata,
    Column("comp_id", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("allowed_addresses", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# The audit trail (oms.audit): one hash chain per instance. Written with each engine batch (inbound and
# outbound business messages) and by operator actions; never updated. `ts` is ISO text and `summary`
# canonical JSON text, so what is hashed is exactly what is stored, on every backend.
audit_t = Table(
    "audit",
    metadata,
    Column("instance", String(32), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("who", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

cl_ord_ids_t = Table(
    "cl_ord_ids",
    metadata,
    Column("session", String(128), primary_key=True),
    Column("cl_ord_id", String(128), primary_key=True),
    Column("order_id", String(64), nullable=False),
)

# What a restart reads without scanning the journal: operator risk changes among all events, and a
# venue's cancel ClOrdID naming a child of a finished order (children are otherwise found by child_id).
Index("ix_events_instance_kind", events_t.c.instance, events_t.c.kind)
Index("ix_children_cancel_id", children_t.c.cancel_id)
# Children in doubt (oms.model.IN_DOUBT) of finished orders: a restart must still ask their venue.
Index("ix_children_status", children_t.c.status)

# Working statuses, as stored: a restart loads these orders; the rest are read when something names them.
_OPEN_VALUES = [s.value for s in OrdStatus if s not in TERMINAL]
_TERMINAL_VALUES = [s.value for s in TERMINAL]
_AVG_PX = Decimal("0.000001")


def make_engine(url: str) -> SAEngine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL + NORMAL: a committed transaction survives a killed process (not a power cut).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: SAEngine) -> None:
    metadata.create_all(engine)
    # create_all adds indexes only with a table it creates: add those a newer version defines to an
    # existing journal (there are no migrations; create_schema runs at every start).
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)


def _now() -> datetime:
    return datetime.now(UTC)


def order_row(o: Order, instance: str) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "instance": instance,
        "seq": o.seq,
        "session": o.session,
        "account": o.account,
        "cl_ord_id": o.cl_ord_id,
        "orig_cl_ord_id": o.orig_cl_ord_id,
        "symbol": o.symbol,
        "side": o.side.value if o.side else None,
        "ord_type": o.ord_type.value if o.ord_type else None,
        "time_in_force": o.time_in_force.value,
        "order_qty": o.order_qty,
        "price": o.price,
        "stop_px": o.stop_px,
        "status": o.status.value,
        "pending": o.pending.value if o.pending else None,
        "pending_cl_ord_id": o.pending_cl_ord_id,
        "pending_qty": o.pending_qty,
        "pending_price": o.pending_price,
        "pending_ord_type": o.pending_ord_type.value if o.pending_ord_type else None,
        "pending_tif": o.pending_tif.value if o.pending_tif else None,
        "expire_time": o.expire_time,
        "max_floor": o.max_floor,
        "ex_destination": o.ex_destination,
        "target_strategy": o.target_strategy,
        "arrival_mid": o.arrival_mid,
        "held": o.held,
        "expiring": o.expiring,
        "cum_qty": o.cum_qty,
        "notional": o.notional,
        "text": o.text,
        "rej_reason": int(o.rej_reason) if o.rej_reason is not None else None,
        "report_seq": o.report_seq,
        "child_seq": o.child_seq,
        "created_at": o.created_at,
        "updated_at": o.updated_at or o.created_at,
    }


def child_row(c: Child) -> dict[str, Any]:
    return {
        "child_id": c.child_id,
        "order_id": c.order_id,
        "venue": c.venue,
        "qty": c.qty,
        "price": c.price,
        "ord_type": c.ord_type.value,
        "time_in_force": c.time_in_force.value,
        "cum_qty": c.cum_qty,
        "notional": c.notional,
        "status": c.status.value,
        "venue_order_id": c.venue_order_id,
        "cancel_id": c.cancel_id,
        "text": c.text,
    }


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
        created_at=r.created_at,
        status=OrdStatus(r.status),
        pending=OrdStatus(r.pending) if r.pending else None,
        pending_cl_ord_id=r.pending_cl_ord_id,
        pending_qty=r.pending_qty,
        pending_price=r.pending_price,
        pending_ord_type=OrdType(r.pending_ord_type) if r.pending_ord_type else None,
        pending_tif=TimeInForce(r.pending_tif) if r.pending_tif else None,
        orig_cl_ord_id=r.orig_cl_ord_id,
        expire_time=r.expire_time,
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
        updated_at=r.updated_at,
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
    )


@dataclass
class LoadedState:
    orders: dict[str, Order] = field(default_factory=dict)
    cl_ord_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    venue_exec_ids: set[tuple[str, str]] = field(default_factory=set)
    # (venue, venue exec id) -> (order id, child id, our exec id, qty, px) of fills still standing
    fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]] = field(default_factory=dict)
    max_seq: int = 0
    last_batch: int = 0
    unsent: list[Any] = field(default_factory=list)
    # operator changes to risk, oldest first, to replay on start
    risk_changes: list[ev.Event] = field(default_factory=list)
    # `load_open` only: (account, symbol, side) -> (qty, notional) filled by the finished orders it left
    # in the journal, valued as risk values a finished order (CumQty x AvgPx)
    finished_fills: dict[tuple[str, str, Side], tuple[Decimal, Decimal]] = field(default_factory=dict)
    # `load_open` only: finished orders with a child in doubt (the engine reads them back at start)
    in_doubt_orders: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoadedOrder:
    """One order read from the journal on demand, with what the engine indexes besides the order."""

    order: Order
    # (venue, venue exec id) of every execution, busted ones too (a repeat must still be ignored)
    venue_exec_ids: frozenset[tuple[str, str]]
    # the executions still standing, as in LoadedState.fills
    fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]]



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
    """Single-writer journal. Only the engine thread calls `commit`."""

    def __init__(self, engine: SAEngine, instance: str) -> None:
        self.engine = engine
        self.instance = instance
        self._known_orders: set[str] = set()
        self._known_children: set[str] = set()
        self._batch = 0
        # The audit chain's head (seq, hash), read on first use; the lock keeps the engine's batches and
        # operator rows (admin socket thread) in one chain.
        self._audit_head: tuple[int, str] | None = None
        self._audit_lock = threading.Lock()
        # The batch statements, compiled once (see _Prepared).
        self._prepared: dict[str, _Prepared] = {}

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

        if isinstance(exc, sa_exc.DBAPIError):
            return isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError)
        if isinstance(exc, sa_exc.StatementError | UnicodeError):
            return True
        try:  # psycopg's pipeline raises its own errors unwrapped
            import psycopg
        except ImportError:
            return False
        return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)

    def load(self) -> LoadedState:
        """Every order this instance journaled, finished ones too (tools and tests; the engine starts
        from `load_open`)."""
        state = LoadedState()
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
            self._load_tail(conn, state)
        self._known_orders = set(state.orders)
        self._known_children = {cid for o in state.orders.values() for cid in o.children}
        return state

    def load_open(self) -> LoadedState:
        """What the engine needs before it takes a message: the working orders with their children and
        executions, every used ClOrdID, the order counter, operator risk changes, the last outbox batch,
        and the fills of finished orders summed per account, symbol and side (risk's positions and
        filled notional). Finished orders stay in the journal: `load_order` and `order_id_of_child`
        read one when something names it."""
        state = LoadedState()
        working = (select(orders_t.c.order_id).where(orders_t.c.instance == self.instance)
                   .where(orders_t.c.status.in_(_OPEN_VALUES)))
        with self.engine.connect() as conn:
            for r in conn.execute(select(orders_t).where(orders_t.c.instance == self.instance)
                                  .where(orders_t.c.status.in_(_OPEN_VALUES))):
                state.orders[r.order_id] = order_from_row(r)
            if state.orders:
                for r in conn.execute(select(children_t).where(children_t.c.order_id.in_(working))):
                    order = state.orders.get(r.order_id)
                    if order is not None:
                        order.children[r.child_id] = child_from_row(r)
                for r in conn.execute(select(executions_t).where(executions_t.c.order_id.in_(working))):
                    _add_execution(state.venue_exec_ids, state.fills, r)
            # Every ClOrdID ever used, finished orders' too: reading them costs less than a journal read
            # per new order would (each one is a new ClOrdID to check for a duplicate).
            # (.all(): one fetchall instead of a fetchone per row, a third of the time for 100,000 rows)
            state.cl_ord_ids = {(session, cl_ord_id): order_id for session, cl_ord_id, order_id
                                in _driver_rows(conn, select(cl_ord_ids_t.c.session, cl_ord_ids_t.c.cl_ord_id,
                                                             cl_ord_ids_t.c.order_id))}
            state.finished_fills = self._finished_fills(conn)
            state.in_doubt_orders = list(conn.execute(
                select(children_t.c.order_id).distinct()
                .join(orders_t, orders_t.c.order_id == children_t.c.order_id)
                .where(children_t.c.status == IN_DOUBT.value)
                .where(orders_t.c.instance == self.instance)
                .where(orders_t.c.status.in_(_TERMINAL_VALUES))).scalars())
            self._load_tail(conn, state)
        self._known_orders = set(state.orders)
        self._known_children = {cid for o in state.orders.values() for cid in o.children}
        return state

    def _finished_fills(self, conn: Any) -> dict[tuple[str, str, Side], tuple[Decimal, Decimal]]:
        # Raw text, not the Dec type: this reads one row per finished order that ever filled, the one
        # part of a restart that still grows with the journal, so it skips the per-column processing.
        # Filters as risk's rebuild did: accepted orders with a side and type, never rejected ones.
        text = String()
        q = (select(orders_t.c.account, orders_t.c.symbol, orders_t.c.side, type_coerce(orders_t.c.cum_qty, text),
                    type_coerce(orders_t.c.notional, text))
             .where(orders_t.c.instance == self.instance).where(orders_t.c.status.in_(_TERMINAL_VALUES))
             .where(orders_t.c.rej_reason.is_(None)).where(orders_t.c.side.is_not(None))
             .where(orders_t.c.ord_type.is_not(None)).where(orders_t.c.cum_qty != "0"))
        sums: dict[tuple[str, str, str], list[Decimal]] = {}
        for account, symbol, side, cum_text, notional_text in _driver_rows(conn, q):
            cum = Decimal(cum_text)
            if not cum:
                continue
            total = sums.get((account, symbol, side))
            if total is None:
                total = sums[(account, symbol, side)] = [Decimal(0), Decimal(0)]
            total[0] += cum
            total[1] += cum * (Decimal(notional_text) / cum).quantize(_AVG_PX)  # Order.avg_px
        return {(a, s, Side(side)): (q_, n) for (a, s, side), (q_, n) in sums.items()}

    def _load_tail(self, conn: Any, state: LoadedState) -> None:
        """The counters, risk changes and outbox every load reads."""
        max_seq = conn.execute(
            select(func.max(orders_t.c.seq)).where(orders_t.c.instance == self.instance)
        ).scalar()
        for r in conn.execute(
            select(events_t.c.kind, events_t.c.payload)
            .where(events_t.c.instance == self.instance)
            .where(events_t.c.kind.in_(["TradingStateChanged", "RiskLimitChanged"]))
            .order_by(events_t.c.seq)
        ):
            state.risk_changes.append(ev.from_payload(r.kind, r.payload))
        rows = conn.execute(
            select(outbox_t.c.batch, outbox_t.c.payload, outbox_t.c.sent)
            .where(outbox_t.c.instance == self.instance)
            .where(outbox_t.c.batch >= select(func.coalesce(func.max(outbox_t.c.batch), 0))
                   .where(outbox_t.c.instance == self.instance).scalar_subquery() - 1)
            .order_by(outbox_t.c.batch)
        ).all()
        for r in rows:
            state.last_batch = max(state.last_batch, int(r.batch))
            if not r.sent:
                state.unsent.extend(pickle.loads(r.payload))
        self._batch = state.last_batch
        state.max_seq = int(max_seq or 0)

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
        # From now on the engine may change it: its next commit updates the rows instead of inserting.
        self._known_orders.add(order_id)
        self._known_children.update(order.children)
        return LoadedOrder(order, frozenset(seen), fills)

    def order_id_of_child(self, venue_cl_ord_id: str) -> str | None:
        """The order whose child has this venue ClOrdID (the child's id, or one of its cancels' ids)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(children_t.c.order_id).where(children_t.c.child_id == venue_cl_ord_id)
                                 ).scalar()
            if found is None:
                found = conn.execute(select(children_t.c.order_id).where(children_t.c.cancel_id == venue_cl_ord_id)
                                     .limit(1)).scalar()
            return found

    def commit(self, events: list[ev.Event], dirty: Iterable[Order], client_messages: list[Any] | None = None,
               inbound: Sequence[Any] = (), outbound: Sequence[Any] = ()) -> None:
        """Write a batch in one transaction. Raises on failure; nothing of the batch is then stored.

        `client_messages` (what this batch will send to clients) go to the outbox; committing a batch
        marks the previous one sent, since the engine sends a batch before it commits the next.
        `inbound` (the batch's commands) and `outbound` (everything it will send) are audited: their
        business messages become hash-chained audit rows (oms.audit) in the same transaction."""
        dirty = list(dirty)
        audit_entries = audit.batch_entries(inbound, outbound) if inbound or outbound else []
        if not events and not dirty and not client_messages and not audit_entries:
            return  # e.g. a batch of market data only: nothing to make durable
        now = _now()
        event_rows: list[dict[str, Any]] = []
        exec_rows: list[dict[str, Any]] = []
        exec_updates: list[dict[str, Any]] = []
        clord_rows: list[dict[str, Any]] = []
        for e in events:
            event_rows.append(
                {
                    "instance": self.instance,
                    "ts": now,
                    "kind": type(e).__name__,
                    "order_id": getattr(e, "order_id", None),
                    "payload": _payload(e),
                }
            )
            if isinstance(e, ev.ChildFilled):
                exec_rows.append(
                    {
                        "exec_id": e.exec_id,
                        "order_id": e.order_id,
                        "child_id": e.child_id,
                        "venue": e.venue,
                        "venue_exec_id": e.venue_exec_id,
                        "last_qty": e.last_qty,
                        "last_px": e.last_px,
                        "status": "ok",
                        "ts": e.ts,
                    }
                )
            elif isinstance(e, ev.FillBusted):
                exec_updates.append({"b_venue": e.venue, "b_venue_exec_id": e.venue_exec_id, "b_status": "busted",
                                     "b_last_qty": e.qty, "b_last_px": e.px})
            elif isinstance(e, ev.FillCorrected):
                exec_updates.append({"b_venue": e.venue, "b_venue_exec_id": e.venue_exec_id,
                                     "b_status": "corrected", "b_last_qty": e.new_qty, "b_last_px": e.new_px})
            elif (isinstance(e, ev.OrderAccepted | ev.OrderRejected | ev.ReplaceRequested)
                  or isinstance(e, ev.CancelRequested) and e.cl_ord_id):
                # Every ClOrdID a session used (a replace's too): a restart finds finished orders by them.
                clord_rows.append({"session": e.session, "cl_ord_id": e.cl_ord_id, "order_id": e.order_id})
        new_orders: list[dict[str, Any]] = []
        upd_orders: list[dict[str, Any]] = []
        new_children: list[dict[str, Any]] = []
        upd_children: list[dict[str, Any]] = []
        for o in dirty:
            o.updated_at = now
            (upd_orders if o.order_id in self._known_orders else new_orders).append(order_row(o, self.instance))
            for c in o.children.values():
                (upd_children if c.child_id in self._known_children else new_children).append(child_row(c))
        batch = self._batch + 1
        with self._transaction(audit_entries, now) as (conn, _audit_rows), _pipeline(conn):
            stmt = self._stmt
            if self._batch:
                stmt(conn, "outbox_sent").execute(conn, [{"instance": self.instance, "batch": self._batch,
                                                          "sent": True}])
            if batch % 1000 == 0:  # the outbox only matters for the last batch: keep it small
                conn.execute(outbox_t.delete().where(outbox_t.c.instance == self.instance)
                             .where(outbox_t.c.batch < batch - 1000))
            if client_messages:
                stmt(conn, "outbox").execute(conn, [{"batch": batch, "instance": self.instance, "sent": False,
                                                     "payload": pickle.dumps(client_messages)}])
            if event_rows:
                stmt(conn, "events").execute(conn, event_rows)
            if new_orders:
                stmt(conn, "orders").execute(conn, new_orders)
            if upd_orders:
                stmt(conn, "orders_update").execute(conn, upd_orders)
            if new_children:
                stmt(conn, "children").execute(conn, new_children)
            if upd_children:
                stmt(conn, "children_update").execute(conn, upd_children)
            if exec_rows:
                stmt(conn, "executions").execute(conn, exec_rows)
            if exec_updates:
                conn.execute(
                    executions_t.update()
                    .where(executions_t.c.venue == bindparam("b_venue"))
                    .where(executions_t.c.venue_exec_id == bindparam("b_venue_exec_id"))
                    .values(status=bindparam("b_status"), last_qty=bindparam("b_last_qty"),
                            last_px=bindparam("b_last_px")),
                    exec_updates,
                )
            if clord_rows:
                stmt(conn, "cl_ord_ids").execute(conn, clord_rows)
        if client_messages:
            self._batch = batch
        self._known_orders.update(r["order_id"] for r in new_orders)
        self._known_children.update(r["child_id"] for r in new_children)

    # --- audit -------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, entries: Sequence[audit.Entry] = (),
                     now: datetime | None = None) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """A write transaction that starts by appending `entries` to the audit chain, one at a time in
        this process. The cached head moves when the transaction commits. If another writer (a CLI
        while no engine ran) moved the chain, the append conflicts on (instance, seq): it is retried
        once from the database's head before anything else of the transaction has run."""
        now = now or _now()
        with self._audit_lock:
            written: list[dict[str, Any]] = []
            try:
                with self.engine.connect() as conn:
                    trans = conn.begin()
                    if entries:
                        try:
                            self._write_audit(conn, written, entries, now)
                        except IntegrityError:
                            trans.rollback()
                            written.clear()
                            self._audit_head = None
                            log.warning("the audit chain moved under this journal (another writer): "
                                        "chaining from the database's head")
                            trans = conn.begin()
                            self._write_audit(conn, written, entries, now)
                    with trans:  # commits when the body returns, rolls back if it raises
                        yield conn, written
            except BaseException:
                self._audit_head = None
                raise
            if written:
                self._audit_head = (written[-1]["seq"], written[-1]["hash"])

    def _write_audit(self, conn: Any, written: list[dict[str, Any]], entries: Sequence[audit.Entry],
                     now: datetime) -> None:
        head = self._audit_head
        if head is None:
            head = self._audit_head = audit_head(conn, self.instance)
        instance = self.instance
        rows = [{"seq": r.seq, "ts": r.ts, "who": r.who, "kind": r.kind, "summary": r.summary,
                 "prev_hash": r.prev_hash, "hash": r.hash, "instance": instance}
                for r in audit.chain(head, entries, now)]
        self._stmt(conn, "audit").execute(conn, rows)
        written.extend(rows)

    def _stmt(self, conn: Any, name: str) -> _Prepared:
        prepared = self._prepared.get(name)
        if prepared is None:
            prepared = self._prepared[name] = _Prepared(*_BATCH_STATEMENTS[name](), conn.dialect)
        return prepared

    def append_audit(self, who: str, kind: str, summary: dict[str, Any]) -> int:
        """Add one row (an operator action) to the chain, in its own transaction; returns its seq.

        Thread-safe against the engine's `commit`. While an engine runs, only its process writes the
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


def _update_by_key(table: Table, key: str) -> Any:
    # Bind names must differ from column names in an UPDATE ... SET.
    cols: dict[str, Any] = {c.name: bindparam("b_" + c.name) for c in table.columns if c.name != key}
    return table.update().where(table.c[key] == bindparam("b_" + key)).values(**cols)


def _keyed(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {"b_" + k: v for k, v in row.items()}


# Per event class: its field names and one getter for all of them (ev.to_payload, without looking the
# dataclass fields up for every event of every batch).
_EVENT_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}
_AS_IS = frozenset({str, int, bool, float, type(None)})


def _payload(e: ev.Event) -> dict[str, Any]:
    """`ev.to_payload(e)`: the same dict, cheaper."""
    spec = _EVENT_FIELDS.get(type(e))
    if spec is None:
        names = tuple(f.name for f in dataclasses.fields(e))
        attr = attrgetter(*names)
        spec = _EVENT_FIELDS[type(e)] = (names, (lambda obj: (attr(obj),)) if len(names) == 1 else attr)
    names, values = spec
    plain = ev._plain
    return {name: v if type(v) in _AS_IS else plain(v) for name, v in zip(names, values(e), strict=True)}


def _pipeline(conn: Any) -> AbstractContextManager[Any]:
    """On PostgreSQL (psycopg) a batch's statements go out in one pipeline: one round trip for all of them
    instead of one each. An error surfaces when the block ends, still inside the transaction."""
    if conn.dialect.driver == "psycopg":
        return conn.connection.driver_connection.pipeline()  # type: ignore[no-any-return]
    return nullcontext()


def _all_columns(table: Table) -> tuple[Any, None]:
    return insert(table), None


_BATCH_STATEMENTS: dict[str, Callable[[], tuple[Any, Sequence[str] | None]]] = {
    "events": lambda: (insert(events_t), ["instance", "ts", "kind", "order_id", "payload"]),
    "orders": lambda: _all_columns(orders_t),
    "orders_update": lambda: (_update_by_key(orders_t, "order_id"), None),
    "children": lambda: _all_columns(children_t),
    "children_update": lambda: (_update_by_key(children_t, "child_id"), None),
    "executions": lambda: _all_columns(executions_t),
    "cl_ord_ids": lambda: _all_columns(cl_ord_ids_t),
    "audit": lambda: _all_columns(audit_t),
    "outbox": lambda: _all_columns(outbox_t),
    "outbox_sent": lambda: (outbox_t.update().where(outbox_t.c.instance == bindparam("b_instance"))
                            .where(outbox_t.c.batch == bindparam("b_batch")).values(sent=bindparam("b_sent")),
                            None),
}


class _Prepared:
    """A batch statement compiled once per dialect and run with `exec_driver_sql`, its rows bound here.

    The SQL text and each column's conversion (Dec, DateTime, JSON, Boolean as the dialect stores them)
    are SQLAlchemy's own, taken from the compiled statement, so what is stored is what `conn.execute`
    would store; what is skipped is SQLAlchemy's per-row parameter processing, which cost more than the
    database's work. `rows` are dicts by column name (bind `b_x` of an update reads column `x`)."""

    __slots__ = ("sql", "positional", "names", "getter", "procs")

    def __init__(self, stmt: Any, keys: Sequence[str] | None, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None,
                                for_executemany=True)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.names = names
        self.getter = itemgetter(*[n[2:] if n.startswith("b_") else n for n in names])
        self.procs = [(i, _once(proc) if isinstance(compiled.binds[n].type, DateTime) else proc)
                      for i, n in enumerate(names)
                      if (proc := compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
        if len(names) < 2:
            raise ValueError("a prepared statement binds at least two columns")

    def execute(self, conn: Any, rows: Sequence[dict[str, Any]]) -> None:
        getter, procs = self.getter, self.procs
        bound: list[Any] = []
        for row in rows:
            values = getter(row)
            if procs:
                values = list(values)
                for i, proc in procs:
                    values[i] = proc(values[i])
            bound.append(tuple(values) if self.positional else dict(zip(self.names, values, strict=True)))
        conn.exec_driver_sql(self.sql, bound)


def _once(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A DateTime bind processor that converts the same datetime object once: every row of a batch
    carries the batch's one `now` (events, orders, children), so it is formatted once, not per row.
    Only the very object last converted is reused (datetimes are immutable), never an equal one."""
    last: tuple[Any, Any] = (object(), None)

    def process(value: Any) -> Any:
        nonlocal last
        seen, out = last  # one tuple, swapped whole: a pair is never torn
        if value is seen:
            return out
        out = proc(value)
        last = (value, out)
        return out

    return process


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
def audit_head(conn: Any, instance: str) -> tuple[int, str] | None:
    row = conn.execute(
        select(audit_t.c.seq, audit_t.c.hash).where(audit_t.c.instance == instance)
        .order_by(audit_t.c.seq.desc()).limit(1)
    ).first()
    return (int(row.seq), str(row.hash)) if row is not None else None


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
