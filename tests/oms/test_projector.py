"""The log and its projection (oms.journal, oms.projector): a restart after a crash that left the log
ahead of the derived tables projects the tail first, and one pass over many batches writes the same
tables as a pass per batch."""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from oms import audit
from oms import commands as c
from oms.decider import Decider, EngineConfig
from oms.enums import ExecType, OrdStatus, OrdType, Side
from oms.journal import Journal
from oms.queries import iter_audit
from oms.reports import CancelReject, ExecutionReport, MassCancelReport, VenueNewOrder
from oms.schema import (
    children_t,
    cl_ord_ids_t,
    events_t,
    executions_t,
    journal_log_t,
    journal_marks_t,
    make_engine,
    orders_t,
)
from sor.static import StaticRouter

D = Decimal


def run_day(journal: Journal, project_each_batch: bool = False) -> list[ExecutionReport]:
    """Orders, acks, fills and a cancel decided by a real decider, each command its own batch, appended
    to `journal` as the engine does (and projected batch by batch if asked). Returns the client
    messages of the last batch."""
    decider = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    decider.decide([c.VenueSessionUp("V1")])
    last: list[ExecutionReport] = []

    def batch(*commands: object) -> list[object]:
        nonlocal last
        b = decider.decide(list(commands))
        last = [o for o in b.outbound if isinstance(o, ExecutionReport | CancelReject | MassCancelReport)]
        journal.append(b.events, b.dirty.values(), last, inbound=commands, outbound=b.outbound)  # type: ignore[arg-type]
        if project_each_batch:
            journal.sync()
        return b.outbound

    for i in range(6):
        out = batch(c.NewOrder("S1", f"C{i}", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D("150.00")))
        child = next(o for o in out if isinstance(o, VenueNewOrder))
        batch(c.VenueReport("V1", child.child_id, None, f"VO{i}", f"A{i}", ExecType.NEW, OrdStatus.NEW))
        if i % 2 == 0:
            batch(c.VenueReport("V1", child.child_id, None, f"VO{i}", f"F{i}", ExecType.TRADE,
                                OrdStatus.PARTIALLY_FILLED, D(40), D("149.99")))
    batch(c.CancelOrder("S1", "X1", "C1"))
    return last


def tables(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(url)
    out = {}
    with engine.connect() as conn:
        out["orders"] = sorted(tuple(r) for r in conn.execute(
            select(*[col for col in orders_t.c if col.name not in ("created_at", "updated_at")])))
        out["children"] = sorted(tuple(r) for r in conn.execute(select(children_t)))
        out["executions"] = sorted((r.exec_id, r.venue_exec_id, r.last_qty, r.status) for r in conn.execute(select(executions_t)))
        out["events"] = [(r.kind, r.order_id) for r in conn.execute(select(events_t).order_by(events_t.c.seq))]
        out["cl_ord_ids"] = sorted(tuple(r) for r in conn.execute(select(cl_ord_ids_t)))
    rows = list(iter_audit(engine, "T"))
    out["audit"] = [(r.seq, r.who, r.kind, r.summary) for r in rows]
    assert audit.verify(rows).intact
    engine.dispose()
    return out


def test_a_restart_projects_the_log_the_crash_left_ahead_of_the_tables(db_url: str) -> None:
    crashed = Journal.open(db_url, "T")
    crashed.create_schema()
    crashed.projector = "off"  # nothing projects: as if the process died right after its appends
    last = run_day(crashed)
    assert tables(db_url)["orders"] == []

    restarted = Journal.open(db_url, "T")
    state = restarted.load_open()
    assert {o.cl_ord_id: (o.status, o.cum_qty) for o in state.orders.values()} == {
        "C0": (OrdStatus.PARTIALLY_FILLED, D(40)), "C2": (OrdStatus.PARTIALLY_FILLED, D(40)),
        "C3": (OrdStatus.NEW, 0), "C4": (OrdStatus.PARTIALLY_FILLED, D(40)), "C5": (OrdStatus.NEW, 0),
        "C1": (OrdStatus.NEW, 0)}  # the cancel is pending at the venue: still working
    assert state.orders["T-2"].pending is OrdStatus.PENDING_CANCEL
    assert state.unsent == last  # the last batch may not have been sent before the crash
    assert len(state.venue_exec_ids) == 3 and state.max_seq == 6
    projected = tables(db_url)
    assert len(projected["executions"]) == 3 and len(projected["cl_ord_ids"]) == 7
    restarted.close()
    assert Journal.open(db_url, "T").load_open().unsent == []  # a clean stop: nothing to resend


def test_one_pass_over_many_batches_writes_what_a_pass_per_batch_writes(db_url: str, tmp_path: object) -> None:
    coalesced = Journal.open(db_url, "T")
    coalesced.create_schema()
    coalesced.projector = "off"
    run_day(coalesced)
    coalesced.sync()  # one pass (the whole day is under PASS_RECORDS)
    one_pass = tables(db_url)

    other_url = f"sqlite:///{tmp_path}/per-batch.db"  # type: ignore[str-bytes-safe]
    per_batch = Journal.open(other_url, "T")
    per_batch.create_schema()
    per_batch.projector = "off"
    run_day(per_batch, project_each_batch=True)
    by_batch = tables(other_url)
    assert one_pass["events"] == by_batch["events"] and len(one_pass["events"]) > 20
    for name in ("orders", "children", "executions", "cl_ord_ids"):
        assert one_pass[name] == by_batch[name], name
    # the same rows in the same order (times aside), each chain verified intact by tables()
    assert [(seq, who, kind, _no_times(summary)) for seq, who, kind, summary in one_pass["audit"]] == [
        (seq, who, kind, _no_times(summary)) for seq, who, kind, summary in by_batch["audit"]]


def _no_times(summary: str) -> str:
    import json

    return json.dumps({k: v for k, v in json.loads(summary).items() if k not in ("transact_time", "ts")})


def test_a_pass_that_conflicts_with_a_row_already_there_is_projected_again_skipping_it(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A ClOrdID row put in the table by hand conflicts with the pass that journals it (on PostgreSQL the
    pass's inserts run as COPY, whose error must still reach the journal as SQLAlchemy's IntegrityError):
    the pass is projected again leniently, everything else of it is written and the conflict is logged."""
    journal = Journal.open(db_url, "T")
    journal.projector = "off"
    journal.create_schema()
    with journal.engine.begin() as conn:
        conn.execute(cl_ord_ids_t.insert().values(session="S1", cl_ord_id="C3", order_id="BY-HAND"))
    run_day(journal)
    journal.sync()
    projected = tables(db_url)
    assert ("S1", "C3", "BY-HAND") in projected["cl_ord_ids"]  # skipped, not overwritten
    assert len([r for r in projected["cl_ord_ids"] if r[0] == "S1"]) == 7  # C0..C5 and X1
    assert len(projected["orders"]) == 6 and projected["events"] and projected["audit"]
    assert "conflicts with rows already in the journal's tables" in caplog.text
    journal.close(sent=False)


def test_project_new_takes_what_is_past_its_mark_and_what_another_projector_did_is_not_done_twice(
        db_url: str) -> None:
    """The projector process's pass (Journal.project_new) reads the marks once, then only the log: records
    another projector wrote meanwhile are skipped under the marks' lock, and the tables end as a catch-up
    leaves them."""
    journal = Journal.open(db_url, "T")
    journal.projector = "off"
    journal.create_schema()
    other = Journal.open(db_url, "T")
    other.projector = "off"
    for i in range(1, 4):
        journal.append([], [], [], inbound=[_new_order(f"C{i}")])
    journal.project_new()
    assert journal._projected == 3
    for i in range(4, 9):
        journal.append([], [], [], inbound=[_new_order(f"C{i}")])
    other.catch_up()  # another projector moves the mark to 8
    journal.append([], [], [], inbound=[_new_order("C9")])
    journal.project_new()  # reads 4..9 from its own mark: 4..8 are skipped, 9 is projected
    with journal.engine.connect() as conn:
        projected = conn.execute(select(journal_marks_t.c.projected)).scalar()
    assert projected == 9
    rows = list(iter_audit(journal.engine, "T"))
    assert [r.summary.count('"cl_ord_id":"C') for r in rows] == [1] * 9  # each NewOrderSingle audited once
    assert audit.verify(rows).intact
    journal.close(sent=False)
    other.close(sent=False)


def test_the_projector_process_derives_the_tables_and_is_restarted_if_it_dies(db_url: str) -> None:
    import signal
    import time

    journal = Journal.open(db_url, "T")
    journal.create_schema()
    journal.projector = "process"
    run_day(journal)

    def projected() -> int:
        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                return len(conn.execute(select(executions_t)).all())
        finally:
            engine.dispose()

    deadline = time.monotonic() + 30
    while projected() < 3:  # nobody calls sync: the other process does the work
        assert time.monotonic() < deadline, "the projector process did not project the log"
        time.sleep(0.05)
    child = journal._child
    assert child is not None and child.pid != 0
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    run_day_more = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T2", symbols=frozenset({"IBM"})))
    run_day_more.decide([c.VenueSessionUp("V1")])
    b = run_day_more.decide([c.NewOrder("S9", "Z1", "ACC", "IBM", Side.SELL, OrdType.LIMIT, D(5), D("151"))])
    journal.append(b.events, b.dirty.values(), [], inbound=[], outbound=b.outbound)  # starts a new one
    assert journal._child is not None and journal._child.pid != child.pid
    journal.close()  # the last pass, then the process exits
    assert journal._child is None and child.returncode is not None
    assert ("S9", "Z1", "T2-1") in tables(db_url)["cl_ord_ids"]


def test_an_append_waits_for_the_sqlite_write_lock_of_the_log_and_no_longer_than_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The append polls for the log file's write lock itself (Journal._insert_sqlite): it must still wait for
    # a writer that holds it, commit once it is free, and fail - storing nothing - when it stays taken past
    # the limit, as SQLite's busy_timeout did.
    url = f"sqlite:///{tmp_path / 'j.db'}"
    journal = Journal(make_engine(url), "T", projector="off")
    journal.create_schema()
    other = sqlite3.connect(tmp_path / "j.db-log", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the log's write lock
    threading.Timer(0.3, other.execute, ("COMMIT",)).start()
    started = time.monotonic()
    assert journal.append([], [], [], inbound=[_new_order("C1")]) == 1
    assert time.monotonic() - started >= 0.25  # it waited for the lock, it did not fail at once
    monkeypatch.setattr("oms.journal.SQLITE_BUSY_WAIT_S", 0.2)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        journal.append([], [], [], inbound=[_new_order("C2")])
    other.execute("COMMIT")
    assert journal.append([], [], [], inbound=[_new_order("C3")]) == 2  # the failed batch took no number
    other.close()
    with make_engine(url).connect() as conn:
        assert conn.execute(select(journal_log_t.c.batch).order_by(journal_log_t.c.batch)).scalars().all() == [1, 2]
    journal.close(sent=False)


def test_on_sqlite_a_projection_pass_does_not_hold_up_the_engines_append(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The log is a database file of its own (oms.schema.log_file): a transaction holding the journal
    # file's write lock, as a projection pass or an operator's audit row does, does not delay an append.
    url = f"sqlite:///{tmp_path / 'j.db'}"
    journal = Journal(make_engine(url), "T", projector="off")
    journal.create_schema()
    assert (tmp_path / "j.db-log").exists()
    other = sqlite3.connect(tmp_path / "j.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE journal_marks SET projected = projected")
    monkeypatch.setattr("oms.journal.SQLITE_BUSY_WAIT_S", 0.2)  # a wait for that lock would fail the append
    assert journal.append([], [], [], inbound=[_new_order("C1")]) == 1
    other.execute("COMMIT")
    other.close()
    journal.sync()  # the pass waits for that writer as before, and projects the batch
    with make_engine(url).connect() as conn:
        assert conn.execute(select(journal_marks_t.c.projected)).scalar() == 1
    journal.close(sent=False)


def _new_order(cl_ord_id: str) -> c.NewOrder:
    return c.NewOrder("S1", cl_ord_id, "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D("150.00"))


def _ten_batches(tmp_path: Path) -> Journal:
    """A SQLite journal with ten batches appended, then one projection pass."""
    journal = Journal(make_engine(f"sqlite:///{tmp_path / 'j.db'}"), "T", projector="off")
    journal.create_schema()
    for i in range(1, 11):
        journal.append([], [], [], inbound=[_new_order(f"C{i}")])
    journal.sync()
    return journal


def _log_batches(journal: Journal) -> list[int]:
    with journal.engine.connect() as conn:
        return list(conn.execute(select(journal_log_t.c.batch).order_by(journal_log_t.c.batch)).scalars())


def test_the_log_is_trimmed_behind_the_projection_a_little_each_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows more than KEEP_LOG batches behind the projection are deleted, at most TRIM_BYTES of them a pass
    # (on SQLite the delete holds the log's write lock, which appends wait for); the rows a restart or
    # a resend may need are kept.
    monkeypatch.setattr("oms.journal.KEEP_LOG", 5)
    monkeypatch.setattr("oms.journal.TRIM_BYTES", 1)  # one row a pass
    monkeypatch.setattr("oms.journal.TRIM_ROWS", 1)  # as many due as a trim takes: it trims at every pass
    journal = _ten_batches(tmp_path)  # one pass: projects 1..10, may delete up to batch 5, one row of it
    assert _log_batches(journal) == list(range(2, 11))
    for i in range(11, 14):
        journal.append([], [], [], inbound=[_new_order(f"C{i}")])
        journal.sync()
    assert _log_batches(journal) == list(range(5, 14))  # a row a pass, never one of the last KEEP_LOG
    journal.close(sent=False)
    reopened = Journal(make_engine(f"sqlite:///{tmp_path / 'j.db'}"), "T", projector="off")
    reopened.catch_up()
    assert reopened._batch == 13
    reopened.close(sent=False)


def test_with_few_rows_due_the_log_is_trimmed_once_in_a_while_not_at_every_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("oms.journal.KEEP_LOG", 5)
    monkeypatch.setattr("oms.journal.TRIM_EVERY_S", 3600.0)
    journal = _ten_batches(tmp_path)  # the first pass looks: batches 1..5 deleted
    assert _log_batches(journal) == list(range(6, 11))
    for i in range(11, 14):
        journal.append([], [], [], inbound=[_new_order(f"C{i}")])
        journal.sync()  # 3 rows due, fewer than TRIM_ROWS, and the last look was just now: kept
    assert _log_batches(journal) == list(range(6, 14))
    monkeypatch.setattr("oms.journal.TRIM_EVERY_S", 0.0)
    journal.append([], [], [], inbound=[_new_order("C14")])
    journal.sync()  # time to look again
    assert _log_batches(journal) == list(range(10, 15))
    journal.close(sent=False)
