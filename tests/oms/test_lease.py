"""The HA lease and the journal's fencing (oms.lease) on a real PostgreSQL: a takeover grows the epoch, a
live lease is not taken, an append of an old epoch stores nothing, the FIX store's trigger refuses a
process that does not hold the lease, and SQLite is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from oms import events as ev
from oms.journal import Journal
from oms.lease import HAUnsupported, Lease, LeaseLost, lease_engine
from oms.schema import ha_lease_t, journal_log_t, make_engine
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


def _paused_in_a_renewal(engine: object, holder: Lease) -> object:
    """A connection of the holder's engine left inside a renewal's transaction, its UPDATE done and its
    COMMIT never sent: what a holder paused (SIGSTOP) between the two leaves behind."""
    conn = engine.connect()  # type: ignore[attr-defined]
    conn.begin()
    conn.execute(text(f"UPDATE {ha_lease_t.name} SET renewed = clock_timestamp() WHERE name = :name AND "
                      "holder = :holder"), {"name": holder.name, "holder": holder.holder})
    return conn


def test_a_holder_paused_inside_a_renewal_does_not_block_the_takeover(pg: str) -> None:
    """The split brain of tests/fault/test_failover.py, once in several runs: the primary was stopped
    between a renewal's UPDATE and its COMMIT, its row lock kept the standby's takeover waiting, and the
    standby never took over. On the lease's connections the server ends a transaction idle for a lease,
    and a takeover waits at most a lease for the lock; the next attempt takes the lease."""
    old_engine, new_engine = lease_engine(pg, 0.3), lease_engine(pg, 0.3)
    old = Lease(old_engine, "OMS1", "host-a:1:aa", lease_s=0.3)
    new = Lease(new_engine, "OMS1", "host-b:2:bb", lease_s=0.3)
    assert old.try_acquire()
    paused = _paused_in_a_renewal(old_engine, old)
    time.sleep(0.4)  # expired, the renewal's transaction still open
    taken: list[bool] = []

    def take() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if new.try_acquire():
                    taken.append(True)
                    return
            except DBAPIError as exc:  # waited a lease for the lock: the standby logs it and looks again
                assert "lock timeout" in str(exc)
            time.sleep(0.1)

    taker = threading.Thread(target=take)
    taker.start()
    taker.join(10)
    assert not taker.is_alive(), "the takeover still waits for the paused holder's lock"
    assert taken == [True] and new.epoch == 2
    # the paused holder wakes up: its renewal's transaction is gone, nothing of it was committed
    with pytest.raises(DBAPIError, match="idle-in-transaction"):
        paused.commit()  # type: ignore[attr-defined]
    assert not old.renew(), "the old holder renewed a lease taken over"
    row = new.read()
    assert row is not None and row.holder == new.holder
    old_engine.dispose()
    new_engine.dispose()


def test_without_the_timeouts_a_paused_renewal_blocks_the_takeover(pg: str) -> None:
    """The same pause on an engine without the lease's settings (what HANode had): the takeover waits for as
    long as the pause lasts. What the test above relies on is the settings, not the timing."""
    old_engine, new_engine = make_engine(pg), make_engine(pg)
    old = Lease(old_engine, "OMS1", "host-a:1:aa", lease_s=0.3)
    new = Lease(new_engine, "OMS1", "host-b:2:bb", lease_s=0.3)
    assert old.try_acquire()
    paused = _paused_in_a_renewal(old_engine, old)
    time.sleep(0.4)
    taker = threading.Thread(target=new.try_acquire, daemon=True)
    taker.start()
    taker.join(2)
    assert taker.is_alive(), "the takeover did not wait for the renewal's lock"
    paused.rollback()  # type: ignore[attr-defined]
    taker.join(5)
    assert not taker.is_alive()
    paused.close()  # type: ignore[attr-defined]
    old_engine.dispose()
    new_engine.dispose()


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


def test_the_fix_store_writes_a_send_in_one_statement_and_numbers_received_lazily_up_to_the_journal(
        pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The patched PostgreSQLStore (native/quickfix/guard.patch): a message sent and the next sender number
    are written together; the next number received is written at most every 100 ms and with every send,
    never ahead of the truth (too low only makes a standby ask for a resend) nor of what the engine says
    it has journaled; a refresh and the store's destruction write what is pending first."""
    from fix_engine.quickfix_import import fix
    from fix_engine.settings import SessionOverrides, pg_store_overrides, quickfix_pg_store

    if not quickfix_pg_store():
        pytest.skip("this QuickFIX has no PostgreSQL store")
    engine = make_engine(pg)
    lease = Lease(engine, "OMS1", "host-a:1:aa", lease_s=30)
    assert lease.try_acquire()
    monkeypatch.setenv("PGAPPNAME", lease.holder)  # the fence lets the holder's connections write
    store_settings = "".join(f"{k}={v}\n" for k, v in pg_store_overrides(SessionOverrides(), pg).extra.items())
    cfg = tmp_path / "store.cfg"
    cfg.write_text(f"[DEFAULT]\nConnectionType=initiator\nStartTime=00:00:00\nEndTime=00:00:00\nHeartBtInt=30\n"
                   f"SocketConnectHost=127.0.0.1\nSocketConnectPort=1\n{store_settings}"
                   "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=FIXOMS\nTargetCompID=CLIENT1\n")
    factory = fix.PostgreSQLStoreFactory(fix.SessionSettings(str(cfg)))
    sid = fix.SessionID("FIX.4.4", "FIXOMS", "CLIENT1")
    dsn = pg.replace("postgresql+psycopg", "postgresql")

    def stored() -> tuple[int, int, list[int]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            incoming, outgoing = conn.execute("SELECT incoming_seqnum, outgoing_seqnum FROM sessions "
                                              "WHERE targetcompid = 'CLIENT1'").fetchone()  # type: ignore[misc]
            seqs = [r[0] for r in conn.execute("SELECT msgseqnum FROM messages WHERE targetcompid = 'CLIENT1' "
                                               "ORDER BY msgseqnum")]
        return int(incoming), int(outgoing), seqs

    store = factory.create(fix.UtcTimeStamp(), sid)
    assert stored() == (1, 1, [])
    store.incrNextTargetMsgSeqNum()  # the first one is written (nothing written for 100 ms)
    for _ in range(4):
        store.incrNextTargetMsgSeqNum()  # these are not, yet
    assert store.getNextTargetMsgSeqNum() == 6
    incoming, _, _ = stored()
    assert 2 <= incoming < 6, "received numbers were written one by one"
    store.set(1, "8=FIX.4.4\x0135=8\x0134=1\x01")
    store.incrNextSenderMsgSeqNum()
    assert stored() == (6, 2, [1]), "a send writes its message, the next sender number and the received one"
    store.set(1, "8=FIX.4.4\x0135=8\x0134=1\x0158=again\x01")  # written again under the same number
    store.incrNextSenderMsgSeqNum()
    with psycopg.connect(dsn, autocommit=True) as conn:
        (message,) = conn.execute("SELECT message FROM messages WHERE targetcompid = 'CLIENT1'").fetchone()  # type: ignore[misc]
    assert message == "8=FIX.4.4\x0135=8\x0134=1\x0158=again\x01"
    store.incrNextTargetMsgSeqNum()
    factory.destroy(store)
    assert stored() == (7, 3, [1]), "the store's destruction wrote the number received last"
    # a new store (a standby taking over) continues from the table
    store = factory.create(fix.UtcTimeStamp(), sid)
    assert (store.getNextTargetMsgSeqNum(), store.getNextSenderMsgSeqNum()) == (7, 3)
    store.incrNextTargetMsgSeqNum()
    store.incrNextTargetMsgSeqNum()
    store.refresh()
    assert store.getNextTargetMsgSeqNum() == 9, "a refresh lost what this process had received"
    # The engine says how far what it received is journaled (set(0, N)): the number stored never passes it,
    # while QuickFIX's own count goes on; a refresh keeps this process's count.
    assert store.set(0, "8")
    store.incrNextTargetMsgSeqNum()
    store.set(3, "8=FIX.4.4\x0135=8\x0134=3\x01")
    store.incrNextSenderMsgSeqNum()
    assert store.getNextTargetMsgSeqNum() == 10
    assert stored()[:2] == (8, 4), "the number stored passed what the engine had journaled"
    store.refresh()
    assert (store.getNextTargetMsgSeqNum(), store.getNextSenderMsgSeqNum()) == (10, 4)
    assert store.set(0, "10")
    factory.destroy(store)
    assert stored()[:2] == (10, 4)
    # a standby taking over starts from the stored numbers: it asks for what was not journaled again
    store = factory.create(fix.UtcTimeStamp(), sid)
    assert store.set(0, "7")  # an explicit set forgets the mark
    store.setNextTargetMsgSeqNum(12)
    store.incrNextTargetMsgSeqNum()
    store.set(4, "8=FIX.4.4\x0135=8\x0134=4\x01")
    store.incrNextSenderMsgSeqNum()
    assert stored()[:2] == (13, 5)
    factory.destroy(store)
    lease.release()
    engine.dispose()
