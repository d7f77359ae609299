"""The primary's lease and the fencing of the journal, for a primary/standby pair on PostgreSQL.

One row of `ha_lease` per instance names the engine that may write the instance's journal (`holder`,
unique per process), until when (`expires`, on the database's clock, so the hosts' clocks do not
matter), and an `epoch` that grows at each takeover. The holder renews it well inside its duration; a
candidate takes it over only once it has expired or was released.

Holding the lease is not what makes a second primary harmless: the fence is. Every journal append of
an HA engine inserts its row only if the lease row still names its holder and epoch, in the same
statement (`fenced_insert`), reading that row FOR SHARE so that a takeover waits for an append in flight
and then sees it. Nothing of a batch is sent before its append commits (oms.engine), so an old primary
that was paused past its lease and wakes up cannot commit, and therefore cannot send. The FIX sessions'
store is fenced the same way by a trigger (migration 0005).

A process can be paused anywhere (SIGSTOP, a VM frozen, swapping), also inside a transaction that holds
the lease row: a renewal between its UPDATE and its COMMIT (the journal's append is a single autocommitted
statement, but its connection is guarded the same way).
Its row lock would keep every takeover waiting for as long as the pause lasts (a standby that logged
nothing and never took over: tests/fault/test_failover.py's split brain, once in several runs). So the
connections that touch the lease row have the server end a transaction left idle for a lease
(idle_in_transaction_session_timeout: `lease_engine`'s, and the journal's append connection), and the
lease's own wait at most a lease for a lock (lock_timeout): a candidate that waited that long fails its
attempt, says so, and tries again at its next look, by when the paused holder's transaction is gone. The
fence is unchanged: an append whose transaction the server ended committed nothing, and its process
learns it at its COMMIT.

SQLite has no second process to fail over to: `Lease` refuses it (`HAUnsupported`).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine as SAEngine

from oms.schema import ha_lease_t, ha_members_t, journal_log_t, make_engine

# A Lease's default duration, as fixoms.config's [ha] lease_s (what an engine is given; its renewal and
# the standby's poll are set there too).
LEASE_S = 1.0


class HAUnsupported(Exception):
    """High availability asked of a journal that cannot provide it (SQLite)."""


class LeaseLost(Exception):
    """This engine no longer holds the lease it wrote with: its append was refused, nothing was stored."""


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str  # "" once released
    epoch: int
    expires: datetime
    renewed: datetime | None
    acquired: datetime | None
    now: datetime  # the database's clock when read

    @property
    def live(self) -> bool:
        return bool(self.holder) and self.expires > self.now

    @property
    def remaining_s(self) -> float:
        return (self.expires - self.now).total_seconds()


def lease_engine(url: str, lease_s: float) -> SAEngine:
    """An engine for the lease's transactions: none of its connections holds a lock, or waits for one,
    longer than a lease (see the module's docstring)."""
    return make_engine(url, pg_settings=lease_timeouts(lease_s))


def lease_timeouts(lease_s: float) -> dict[str, str]:
    """The server settings of a connection that takes the lease row's lock (see the module's docstring)."""
    ms = str(max(1, int(lease_s * 1000)))
    return {"idle_in_transaction_session_timeout": ms, "lock_timeout": ms}


def new_holder_id() -> str:
    """Unique per process start (host, pid, random), at most 63 characters: it is also the connection's
    application_name, which PostgreSQL truncates there and the FIX store's fence compares."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


def require_postgresql(engine: SAEngine) -> None:
    if engine.dialect.name != "postgresql":
        raise HAUnsupported(f"high availability needs the journal on PostgreSQL, not {engine.dialect.name} "
                            "(a standby must reach the primary's journal): set [database] url to postgresql://...")


class Lease:
    """The lease of one instance, as seen by one holder. Thread-safe: each call is its own transaction."""

    def __init__(self, engine: SAEngine, name: str, holder: str, lease_s: float = LEASE_S) -> None:
        require_postgresql(engine)
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.engine = engine
        self.name = name
        self.holder = holder
        self.lease_s = lease_s
        self.epoch = 0  # the epoch we hold (0: none)

    def read(self) -> LeaseRow | None:
        with self.engine.connect() as conn:
            return read_lease(conn, self.name)

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it (absent, expired or released): a new epoch. True if ours."""
        with self.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {ha_lease_t.name} (name, holder, epoch, expires) "
                              "VALUES (:name, '', 0, clock_timestamp()) ON CONFLICT (name) DO NOTHING"),
                         {"name": self.name})
            epoch = conn.execute(text(
                f"UPDATE {ha_lease_t.name} SET holder = :holder, epoch = epoch + 1, "
                "expires = clock_timestamp() + make_interval(secs => :lease), renewed = clock_timestamp(), "
                "acquired = clock_timestamp() "
                "WHERE name = :name AND (holder = '' OR expires < clock_timestamp()) RETURNING epoch"),
                {"holder": self.holder, "lease": self.lease_s, "name": self.name}).scalar()
        if epoch is None:
            return False
        self.epoch = int(epoch)
        return True

    def renew(self) -> bool:
        """Extend our lease; False if it is no longer ours (taken over or released). A lease that expired
        but that nobody took is still ours: the fence, not the clock, decides who may write."""
        if not self.epoch:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(text(
                f"UPDATE {ha_lease_t.name} SET expires = clock_timestamp() + make_interval(secs => :lease), "
                "renewed = clock_timestamp() WHERE name = :name AND holder = :holder AND epoch = :epoch"),
                {"lease": self.lease_s, "name": self.name, "holder": self.holder, "epoch": self.epoch})
        return done.rowcount == 1

    def release(self) -> bool:
        """Give the lease up now (a planned step-down): a standby may take it at its next look."""
        if not self.epoch:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(text(
                f"UPDATE {ha_lease_t.name} SET holder = '', expires = clock_timestamp() "
                "WHERE name = :name AND holder = :holder AND epoch = :epoch"),
                {"name": self.name, "holder": self.holder, "epoch": self.epoch})
        self.epoch = 0
        return done.rowcount == 1

    def fenced_insert(self, paramstyle: str) -> tuple[str, tuple[Any, ...]]:
        """The journal's append for this epoch: the INSERT of one log row that stores nothing unless the
        lease still names us (rowcount 0: LeaseLost). The caller adds (instance, batch, payload) in front
        of the returned parameters."""
        mark = "?" if paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {journal_log_t.name} (instance, batch, payload) SELECT {mark}, {mark}, {mark} "
               f"WHERE EXISTS (SELECT 1 FROM {ha_lease_t.name} WHERE name = {mark} AND holder = {mark} "
               f"AND epoch = {mark} FOR SHARE)")
        return sql, (self.name, self.holder, self.epoch)


def read_lease(conn: Any, name: str) -> LeaseRow | None:
    row = conn.execute(text(f"SELECT name, holder, epoch, expires, renewed, acquired, clock_timestamp() AS now "
                            f"FROM {ha_lease_t.name} WHERE name = :name"), {"name": name}).first()
    if row is None:
        return None
    return LeaseRow(row.name, row.holder, int(row.epoch), row.expires, row.renewed, row.acquired, row.now)


@dataclass(frozen=True, slots=True)
class MemberReport:
    holder: str
    role: str  # "primary" | "standby"
    seen_batch: int
    lag_batches: int
    lag_events: int
    lag_s: float
    reported: datetime
    reported_age_s: float | None = None  # seconds before the read, on the database's clock


def report_member(engine: SAEngine, name: str, holder: str, role: str, seen_batch: int, lag_batches: int,
                  lag_events: int, lag_s: float, forget_after_s: float = 60.0) -> None:
    """Record what this engine last saw (`fixoms ha status` shows it), and forget members that have not
    reported for `forget_after_s` (a killed engine leaves its row behind)."""
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {ha_members_t.name} WHERE name = :name AND reported < "
                          "clock_timestamp() - make_interval(secs => :age)"), {"name": name, "age": forget_after_s})
        conn.execute(text(
            f"INSERT INTO {ha_members_t.name} (name, holder, role, seen_batch, lag_batches, lag_events, lag_s, "
            "reported) VALUES (:name, :holder, :role, :seen, :lb, :le, :ls, clock_timestamp()) "
            "ON CONFLICT (name, holder) DO UPDATE SET role = EXCLUDED.role, seen_batch = EXCLUDED.seen_batch, "
            "lag_batches = EXCLUDED.lag_batches, lag_events = EXCLUDED.lag_events, lag_s = EXCLUDED.lag_s, "
            "reported = EXCLUDED.reported"),
            {"name": name, "holder": holder, "role": role, "seen": seen_batch, "lb": lag_batches,
             "le": lag_events, "ls": lag_s})


def forget_member(engine: SAEngine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {ha_members_t.name} WHERE name = :name AND holder = :holder"),
                     {"name": name, "holder": holder})


def members(conn: Any, name: str) -> list[MemberReport]:
    rows = conn.execute(text(f"SELECT holder, role, seen_batch, lag_batches, lag_events, lag_s, reported, "
                             "extract(epoch FROM clock_timestamp() - reported) AS age "
                             f"FROM {ha_members_t.name} WHERE name = :name ORDER BY role, holder"), {"name": name})
    return [MemberReport(r.holder, r.role, int(r.seen_batch), int(r.lag_batches), int(r.lag_events),
                         float(r.lag_s), r.reported, float(r.age)) for r in rows]


def log_head(conn: Any, instance: str) -> int:
    """The last batch in the instance's journal log (0: none)."""
    return int(conn.execute(text(f"SELECT coalesce(max(batch), 0) FROM {journal_log_t.name} "
                                 "WHERE instance = :i"), {"i": instance}).scalar() or 0)
