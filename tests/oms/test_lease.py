"""The HA lease and the journal's fencing (oms.lease) on a real PostgreSQL: a takeover grows the epoch, a
live lease is not taken, an append of an old epoch stores nothing, the FIX store's trigger refuses a
process that does not hold the lease, and SQLite is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from oms import events as ev
from oms.journal import Journal
from oms.lease import HAUnsupported, Lease, LeaseLost
from oms.schema import journal_log_t, make_engine
from tests.conftest import _PG_SKIP, PG_URL, reset_pg

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> str:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    reset_pg()
    engine = make_engine(PG_URL)
    Journal(engine, "OMS1").create_schema()
    engine.dispose()
    return PG_URL


def _log_rows(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(journal_log_t)).scalar() or 0)


def _risk_event() -> ev.Event:
    from datetime import UTC, datetime

    return ev.RiskLimitChanged("ACC-1", "max_order_qty", "1", "2", "tests", datetime.now(UTC))


def test_a_free_lease_is_taken_a_live_one_is_not_and_each_takeover_grows_the_epoch(pg: str) -> None:
    engine = make_engine(pg)
    a = Lease(engine, "OMS1", "host-a:1:aa", lease_s=0.5)
    b = Lease(engine, "OMS1", "host-b:2:bb", lease_s=0.5)
    assert a.try_acquire() and a.epoch == 1
    assert not b.try_acquire(), "a live lease was taken over"
    assert a.renew()
    row = a.read()
    assert row is not None and row.holder == a.holder and row.live and 0 < row.remaining_s <= 0.5
    # not renewed: it lapses and the other candidate takes it, with the next epoch
    time.sleep(0.6)
    assert b.try_acquire() and b.epoch == 2
    assert not a.renew(), "an old holder renewed a lease taken over"
    # a release hands it over at once
    assert b.release()
    assert a.try_acquire() and a.epoch == 3
    engine.dispose()


def test_an_append_of_an_old_epoch_is_refused_and_stores_nothing(pg: str) -> None:
    engine = make_engine(pg)
    old = Lease(engine, "OMS1", "host-a:1:aa", lease_s=0.3)
    assert old.try_acquire()
    journal = Journal(engine, "OMS1", projector="off")
    journal.lease = old
    fenced: list[LeaseLost] = []
    journal.on_fenced = fenced.append
    assert journal.append([_risk_event()], []) == 1
    time.sleep(0.4)
    new = Lease(engine, "OMS1", "host-b:2:bb", lease_s=5)
    assert new.try_acquire() and new.epoch == old.epoch + 1
    with pytest.raises(LeaseLost):
        journal.append([_risk_event()], [])
    assert len(fenced) == 1
    assert _log_rows(engine) == 1, "the fenced append stored its row"
    # the new holder's journal appends after the old one's last batch
    successor = Journal(engine, "OMS1", projector="off")
    successor.lease = new
    successor.catch_up()
    assert successor.append([_risk_event()], []) == 2
    engine.dispose()


def test_a_takeover_waits_for_an_append_in_flight_and_then_sees_it(pg: str) -> None:
    """The fenced insert reads the lease row FOR SHARE: a takeover that comes while an append's transaction
    is open waits for its commit, so the new primary's replay cannot miss a batch the old one sent."""
    engine = make_engine(pg)
    old = Lease(engine, "OMS1", "host-a:1:aa", lease_s=0.2)
    assert old.try_acquire()
    sql, fence = old.fenced_insert("pyformat")
    conn = psycopg.connect(pg.replace("postgresql+psycopg", "postgresql"))
    cur = conn.cursor()
    cur.execute(sql, ("OMS1", 1, b"x", *fence))  # type: ignore[arg-type]
    assert cur.rowcount == 1
    time.sleep(0.3)  # expired, but the append's transaction is still open
    taken: list[bool] = []
    new = Lease(engine, "OMS1", "host-b:2:bb", lease_s=5)
    taker = threading.Thread(target=lambda: taken.append(new.try_acquire()))
    taker.start()
    taker.join(0.5)
    assert taker.is_alive(), "the takeover did not wait for the append in flight"
    conn.commit()
    taker.join(5)
    assert taken == [True]
    assert _log_rows(engine) == 1
    conn.close()
    engine.dispose()


def test_the_fix_store_refuses_a_process_without_the_lease(pg: str) -> None:
    """QuickFIX's PostgreSQLStore writes `sessions` and `messages` itself; the trigger lets only the
    connections named after the lease holder (application_name) write."""
    engine = make_engine(pg)
    lease = Lease(engine, "OMS1", "host-a:1:aa", lease_s=5)
    assert lease.try_acquire()
    dsn = pg.replace("postgresql+psycopg", "postgresql")
    insert = ("INSERT INTO sessions (beginstring, sendercompid, targetcompid, session_qualifier, creation_time, "
              "incoming_seqnum, outgoing_seqnum) VALUES ('FIX.4.4', 'FIXOMS', 'CLIENT1', '', now(), 1, 1)")
    with psycopg.connect(dsn, application_name="host-b:2:bb", autocommit=True) as other, \
            pytest.raises(psycopg.errors.RaiseException, match="does not hold the lease"):
        other.execute(insert)
    with psycopg.connect(dsn, application_name=lease.holder, autocommit=True) as holder:
        holder.execute(insert)
        holder.execute("UPDATE sessions SET outgoing_seqnum = 5")
    lease.release()
    with psycopg.connect(dsn, application_name=lease.holder, autocommit=True) as released, \
            pytest.raises(psycopg.errors.RaiseException):
        released.execute("UPDATE sessions SET outgoing_seqnum = 6")
    engine.dispose()


def test_sqlite_has_no_lease(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(HAUnsupported, match="PostgreSQL"):
        Lease(engine, "OMS1", "me")
    engine.dispose()
