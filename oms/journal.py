"""The journal: append-only events plus the projections (orders, children, executions) they imply,
written in one transaction per engine batch (group commit). Restart loads the projections.

SQLAlchemy Core only; SQLite (WAL) is the embedded default, PostgreSQL (psycopg 3) the production one.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
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
)
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from oms import audit
from oms import events as ev
from oms.access import Credential, hash_password
from oms.enums import OrdRejReason, OrdStatus, OrdType, Side, TimeInForce
from oms.model import Child, Order

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

    @classmethod
    def open(cls, url: str, instance: str) -> Journal:
        return cls(make_engine(url), instance)

    def create_schema(self) -> None:
        create_schema(self.engine)

    def load(self) -> LoadedState:
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
                state.venue_exec_ids.add((r.venue, r.venue_exec_id))
                if r.status != "busted":
                    state.fills[(r.venue, r.venue_exec_id)] = (r.order_id, r.child_id, r.exec_id, r.last_qty,
                                                               r.last_px)
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
        self._known_orders = set(state.orders)
        self._known_children = {cid for o in state.orders.values() for cid in o.children}
        return state

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
                    "payload": ev.to_payload(e),
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
            elif isinstance(e, ev.OrderAccepted | ev.OrderRejected) or isinstance(e, ev.CancelRequested) and e.cl_ord_id:
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
        with self._transaction(audit_entries, now) as (conn, _audit_rows):
            if self._batch:
                conn.execute(outbox_t.update().where(outbox_t.c.instance == self.instance)
                             .where(outbox_t.c.batch == self._batch).values(sent=True))
            if batch % 1000 == 0:  # the outbox only matters for the last batch: keep it small
                conn.execute(outbox_t.delete().where(outbox_t.c.instance == self.instance)
                             .where(outbox_t.c.batch < batch - 1000))
            if client_messages:
                conn.execute(insert(outbox_t), [{"batch": batch, "instance": self.instance, "sent": False,
                                                 "payload": pickle.dumps(client_messages)}])
            if event_rows:
                conn.execute(insert(events_t), event_rows)
            if new_orders:
                conn.execute(insert(orders_t), new_orders)
            if upd_orders:
                conn.execute(_update_by_key(orders_t, "order_id"), [_keyed(r, "order_id") for r in upd_orders])
            if new_children:
                conn.execute(insert(children_t), new_children)
            if upd_children:
                conn.execute(
                    _update_by_key(children_t, "child_id"), [_keyed(r, "child_id") for r in upd_children]
                )
            if exec_rows:
                conn.execute(insert(executions_t), exec_rows)
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
                conn.execute(insert(cl_ord_ids_t), clord_rows)
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
        rows = [r.as_dict() | {"instance": self.instance} for r in audit.chain(head, entries, now)]
        conn.execute(insert(audit_t), rows)
        written.extend(rows)

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


def _update_by_key(table: Table, key: str) -> Any:
    # Bind names must differ from column names in an UPDATE ... SET.
    cols: dict[str, Any] = {c.name: bindparam("b_" + c.name) for c in table.columns if c.name != key}
    return table.update().where(table.c[key] == bindparam("b_" + key)).values(**cols)


def _keyed(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {"b_" + k: v for k, v in row.items()}


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


def executions(engine: SAEngine, account: str | None = None, symbol: str | None = None) -> list[ExecutionRow]:
    """Every execution (busted ones too, with their status) joined with its order, oldest first."""
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
