"""Schema migrations (oms.migrate, Alembic): a new journal gets the schema oms.schema declares, and a
journal made before migrations existed is upgraded in place, its orders and unsent messages kept."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, inspect, table, text

from oms import events as ev
from oms import migrate
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.journal import Journal
from oms.model import Order
from oms.reports import report
from oms.rows import order_row
from oms.schema import cl_ord_ids_t, make_engine, metadata, orders_t


def test_a_new_journal_is_at_head_and_matches_the_declared_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
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
