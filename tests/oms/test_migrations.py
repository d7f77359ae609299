"""Schema migrations (oms.migrate, Alembic): a new journal gets the schema oms.schema declares, and a
journal made before migrations existed is upgraded in place, its orders and unsent messages kept."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, inspect, table, text

from oms import commands as c
from oms import events as ev
from oms import migrate
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.journal import Journal
from oms.model import Order
from oms.reports import report
from oms.rows import order_row
from oms.schema import LOG_DATABASE, cl_ord_ids_t, journal_log_t, make_engine, metadata, orders_t


def test_a_new_journal_is_at_head_and_matches_the_declared_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
        if engine.dialect.name == "sqlite":
            # journal_log is in the log's own file (oms.schema.log_file), with the columns declared
            assert [(d[0], d[1].name) for d in diff] == [("add_table", "journal_log")]
            diff = []
            logged = inspect(conn).get_columns("journal_log", schema=LOG_DATABASE)
            assert [c["name"] for c in logged] == [c.name for c in journal_log_t.columns]
    assert diff == []
    assert migrate.upgrade(engine) == migrate.HEAD  # at head: nothing to do
    engine.dispose()


def test_a_journal_made_before_migrations_is_upgraded_in_place(db_url: str) -> None:
    engine = make_engine(db_url)
    # The schema fixoms created before migrations (revision 0001), without Alembic's table.
    migrate.upgrade(engine, migrate.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    assert migrate.current(engine) == ""
    accepted = ev.OrderAccepted("OMS1-7", 7, "CLIENT1", "ACC", "C7", "IBM", Side.BUY, OrdType.LIMIT,
                                TimeInForce.DAY, Decimal(100), Decimal("150.25"), None, datetime.now(UTC))
    order = Order.from_accepted(accepted)
    ack = report(order, ExecType.NEW)
    outbox = table("outbox", column("batch"), column("instance"), column("payload"), column("sent"))
    with engine.begin() as conn:
        # A row of that version: the columns later migrations added (0003: done_for_day) did not exist.
        baseline_row = {k: v for k, v in order_row(order, "OMS1").items() if k != "done_for_day"}
        conn.execute(insert(table("orders", *(column(k, orders_t.c[k].type) for k in baseline_row))),
                     [baseline_row])
        conn.execute(insert(cl_ord_ids_t), [{"session": "CLIENT1", "cl_ord_id": "C7", "order_id": "OMS1-7"}])
        conn.execute(insert(outbox), [{"batch": 41, "instance": "OMS1", "payload": pickle.dumps([]), "sent": True},
                                      {"batch": 42, "instance": "OMS1", "payload": pickle.dumps([ack]),
                                       "sent": False}])

    journal = Journal(engine, "OMS1")
    journal.create_schema()  # what every start (and `fixoms init-db`) does
    assert migrate.current(engine) == migrate.HEAD
    assert "outbox" not in inspect(engine).get_table_names()
    state = journal.load_open()
    assert state.orders["OMS1-7"].status is OrdStatus.NEW and state.orders["OMS1-7"].price == Decimal("150.25")
    assert state.cl_ord_ids[("CLIENT1", "C7")] == "OMS1-7"
    assert state.max_seq == 7
    # the batch committed but never marked sent before the upgrade is still resent after it
    assert state.unsent == [ack]
    # and the log goes on after the old outbox's numbering
    assert journal.append([], [order]) == 43
    journal.close()
    state = Journal(engine, "OMS1").load_open()
    assert state.unsent == []  # a clean close: everything was sent
    engine.dispose()


def test_0004_keeps_children_of_an_older_journal_and_its_log_records(db_url: str) -> None:
    """Children written before venue amends (revision 0003) load as never amended, and a log record
    whose child snapshots predate the new columns still projects after the upgrade."""
    from oms.rows import CHILD_COLUMNS, child_row, child_row_from_snapshot, child_snapshot
    from oms.schema import children_t

    engine = make_engine(db_url)
    migrate.upgrade(engine, "0003")
    accepted = ev.OrderAccepted("OMS1-8", 8, "CLIENT1", "ACC", "C8", "IBM", Side.BUY, OrdType.LIMIT,
                                TimeInForce.DAY, Decimal(100), Decimal("150.25"), None, datetime.now(UTC))
    order = Order.from_accepted(accepted)
    order.apply(ev.ChildRouted("OMS1-8", "OMS1-8.1", "VENUE-B", Decimal(100), Decimal("150.25"), OrdType.LIMIT,
                               TimeInForce.DAY))
    added = ("venue_cl_ord_id", "amend_id", "amend_qty", "amend_price")
    old_child = {k: v for k, v in child_row(order.children["OMS1-8.1"]).items() if k not in added}
    with engine.begin() as conn:
        conn.execute(insert(table("orders", *(column(k, orders_t.c[k].type) for k in order_row(order, "OMS1")))),
                     [order_row(order, "OMS1")])
        conn.execute(insert(table("children", *(column(k, children_t.c[k].type) for k in old_child))), [old_child])
    journal = Journal(engine, "OMS1")
    journal.create_schema()
    assert migrate.current(engine) == migrate.HEAD
    child = journal.load_open().orders["OMS1-8"].children["OMS1-8.1"]
    assert (child.venue_id, child.amend_id, child.amend_qty, child.status) == ("OMS1-8.1", "", None, OrdStatus.PENDING_NEW)
    journal.close()
    engine.dispose()
    # a snapshot taken by the version before: the columns it lacks get their "never amended" values
    old_snapshot = child_snapshot(child)[: len(CHILD_COLUMNS) - len(added)]
    assert child_row_from_snapshot(old_snapshot) == child_row(child)


def test_a_sqlite_journals_log_moves_to_a_file_of_its_own_and_back(tmp_path: Path) -> None:
    # 0006: journal_log moves from the journal's file to "<file>-log" with its rows; a log table already
    # in that file (a stale file of an earlier journal of the same name) is replaced, not merged.
    url = f"sqlite:///{tmp_path / 'j.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO main.journal_log (instance, batch, payload) VALUES ('T', 1, x'00'), "
                          "('T', 2, x'01')"))
        conn.execute(text("CREATE TABLE log.journal_log (instance VARCHAR(32), batch BIGINT, payload BLOB)"))
        conn.execute(text("INSERT INTO log.journal_log VALUES ('OLD', 9, x'09')"))
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.HEAD
    assert "journal_log" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT instance, batch FROM log.journal_log ORDER BY batch")).all() == \
            [("T", 1), ("T", 2)]
    journal = Journal(engine, "T", projector="off")
    journal._batch = 2
    assert journal.append([], [], [], inbound=[c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT,
                                                            Decimal(1), Decimal(1))]) == 3
    journal.close(sent=False)
    from alembic import command

    with engine.begin() as conn:  # a downgrade, to go back to an older fixoms
        command.downgrade(migrate._config(conn), "0005")
    with engine.connect() as conn:
        assert [r.batch for r in conn.execute(text("SELECT batch FROM main.journal_log ORDER BY batch"))] == [1, 2, 3]
    engine.dispose()


def test_a_sqlite_journal_without_its_log_file_refuses_to_open_naming_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    for name in ("j.db-log", "j.db-log-wal", "j.db-log-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    engine = make_engine(url)
    with pytest.raises(migrate.JournalLogMissing, match="j.db-log is missing"):
        Journal(engine, "T").create_schema()
    engine.dispose()
