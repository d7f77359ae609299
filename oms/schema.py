"""The journal's tables (SQLAlchemy Core) and how to connect to its database.

Only oms modules import this: everything else reads through oms.queries or the Journal port.
"""


from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.engine import Engine as SAEngine

from oms.enums import TERMINAL, OrdStatus

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
    # A GT order its venue ended for the day: open, reported DoneForDay until renewed (migration 0003).
    Column("done_for_day", Boolean, nullable=False, default=False, server_default=false()),
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
    Column("restatement_reason", Integer),  # the venue's ExecRestatementReason(378) when it ended the child
    # Venue amends (migration 0004): the ClOrdID the venue knows the child by since its last amend ("" =
    # child_id), and an amend the venue has not answered yet (kept across a restart: its answer still applies).
    Column("venue_cl_ord_id", String(96), nullable=False, default="", server_default=""),
    Column("amend_id", String(96), nullable=False, default="", server_default=""),
    Column("amend_qty", Dec),
    Column("amend_price", Dec),
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

# The log: the one write on the engine's critical path. One row per engine batch, appended and committed
# before anything of the batch is sent: its events, the state of the orders it changed, the messages it
# sends to clients and its audit entries, as one pickled oms.projector.BatchRecord. Every other table of
# the journal (orders, children, executions, events, cl_ord_ids, audit) is derived from it by the
# projector and may trail it; restart projects the tail past journal_marks.projected first.
journal_log_t = Table(
    "journal_log",
    metadata,
    Column("instance", String(32), primary_key=True),
    Column("batch", BigInteger, primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
)

# Per instance: the last log batch the derived tables hold, and the last batch known to be sent in full
# (a clean stop); a restart resends the client messages of the last batch past `sent` (PossResend).
journal_marks_t = Table(
    "journal_marks",
    metadata,
    Column("instance", String(32), primary_key=True),
    Column("projected", BigInteger, nullable=False),
    Column("sent", BigInteger, nullable=False),
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

# High availability (oms.lease; PostgreSQL only). One row per instance: who is the primary, until when
# (the database's clock), and the epoch that grows at each takeover. Every journal append of an HA engine
# checks holder and epoch in its own transaction (fencing); `holder` is "" once released (step-down).
ha_lease_t = Table(
    "ha_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(63), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    Column("renewed", DateTime(timezone=True)),
    Column("acquired", DateTime(timezone=True)),
)

# What each HA engine last reported (the standby's lag, the primary's head), for `fixoms ha status`.
ha_members_t = Table(
    "ha_members",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(63), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("seen_batch", BigInteger, nullable=False),
    Column("lag_batches", BigInteger, nullable=False),
    Column("lag_events", BigInteger, nullable=False),
    Column("lag_s", Float, nullable=False),
    Column("reported", DateTime(timezone=True), nullable=False),
)

# QuickFIX's PostgreSQLStore (C++/PostgreSQLStore.cpp): the FIX sessions' sequence numbers and sent
# messages, so that a standby continues each session where the primary left it. QuickFIX 1.16 fixes
# these names and columns; only HA engines use them (a single engine keeps FileStore). On PostgreSQL a
# trigger refuses writes from a process that does not hold the lease (migration 0005).
fix_sessions_t = Table(
    "sessions",
    metadata,
    Column("beginstring", String(8), primary_key=True),
    Column("sendercompid", String(64), primary_key=True),
    Column("targetcompid", String(64), primary_key=True),
    Column("session_qualifier", String(64), primary_key=True),
    Column("creation_time", DateTime, nullable=False),
    Column("incoming_seqnum", BigInteger, nullable=False),
    Column("outgoing_seqnum", BigInteger, nullable=False),
)

fix_messages_t = Table(
    "messages",
    metadata,
    Column("beginstring", String(8), primary_key=True),
    Column("sendercompid", String(64), primary_key=True),
    Column("targetcompid", String(64), primary_key=True),
    Column("session_qualifier", String(64), primary_key=True),
    Column("msgseqnum", BigInteger, primary_key=True, autoincrement=False),
    Column("message", Text, nullable=False),
)

# What a restart reads without scanning the journal: operator risk changes among all events, and a
# venue's cancel or amend ClOrdID naming a child of a finished order (otherwise found by child_id).
Index("ix_events_instance_kind", events_t.c.instance, events_t.c.kind)
Index("ix_children_cancel_id", children_t.c.cancel_id)
Index("ix_children_venue_cl_ord_id", children_t.c.venue_cl_ord_id)  # an amended child of a finished order
# Children in doubt (oms.model.IN_DOUBT) of finished orders: a restart must still ask their venue.
Index("ix_children_status", children_t.c.status)

# Working statuses, as stored: a restart loads these orders; the rest are read when something names them.
_OPEN_VALUES = [s.value for s in OrdStatus if s not in TERMINAL]
_TERMINAL_VALUES = [s.value for s in TERMINAL]
_AVG_PX = Decimal("0.000001")


# SQLite: the name of the database file, attached to every connection, that holds journal_log.
LOG_DATABASE = "log"


def log_file(database: str | None) -> str | None:
    """The file of a SQLite journal's log: the journal's file name plus "-log" (as SQLite's own "-wal"
    and "-shm" beside it). None for an in-memory database, whose log stays in it.

    SQLite locks writes per database file. With the log in the journal's file, every projection pass
    (a transaction of a few milliseconds) held the lock the engine's next append waited for:
    bench/journal_bench.py measured the append's p99 at 2.3 ms with the projector running and 0.5 ms
    without. In a file of its own, the append and the passes never wait for each other. The
    projector's mark moves in the journal's file, so a pass still commits its rows and its mark at once."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-log"


def attached_log_file(engine: SAEngine) -> str | None:
    """The log file make_engine attaches to `engine`'s connections (log_file), None if it attaches none."""
    return log_file(engine.url.database) if engine.dialect.name == "sqlite" else None


def make_engine(url: str, pre_ping: bool = True, pg_settings: dict[str, str] | None = None) -> SAEngine:
    """The journal's SQLAlchemy engine. `pre_ping` (PostgreSQL): test each pooled connection before use, a
    round trip per checkout; a caller that retries a failed attempt anyway (the projector process) may
    spare it: a connection the server dropped fails once, SQLAlchemy empties the pool, the retry connects.
    `pg_settings` (PostgreSQL): server settings of every connection of the engine (oms.lease's timeouts)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        log_path = log_file(engine.url.database)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL + NORMAL: a committed transaction survives a killed process (not a power cut).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            if log_path is not None:
                # journal_log lives there (log_file); unqualified, its name resolves to it, as no table
                # of the main database has that name (migration 0006 moved it).
                cur.execute(f"ATTACH DATABASE ? AS {LOG_DATABASE}", (log_path,))
                cur.execute(f"PRAGMA {LOG_DATABASE}.journal_mode=WAL")
                cur.execute(f"PRAGMA {LOG_DATABASE}.synchronous=NORMAL")
            cur.close()

        return engine
    options = " ".join(f"-c {name}={value}" for name, value in (pg_settings or {}).items())
    return create_engine(url, pool_pre_ping=pre_ping, connect_args={"options": options} if options else {})


def create_schema(engine: SAEngine) -> None:
    """Bring the journal to this version's schema (Alembic migrations: oms.migrate)."""
    from oms.migrate import upgrade

    upgrade(engine)
