"""A standby's warm order state (oms.warm): what a takeover starts from is what a restart reads from the
tables, on SQLite and PostgreSQL, whatever happened after the standby first read them - fills, a
correction, a cancel, a replace, a risk change, and a bust that reopens an order finished before the
standby started (read from the tables at the takeover). A standby whose log records were trimmed before
it read them takes over from the tables instead. tests/oms/test_engine_properties.py checks the same at
every restart of its random runs.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete

from oms import commands as c
from oms.enums import ExecType, OrdStatus, OrdType, Side
from oms.ports import LoadedState
from oms.schema import journal_log_t
from oms.warm import WarmState
from tests.oms.test_engine_properties import assert_same_loaded
from tests.oms.test_restart_lazy import Restartable, fill, filled_order, new


@pytest.fixture
def eng(db_url: str) -> Any:
    r = Restartable(db_url)
    yield r
    r.close()


def takeover(eng: Restartable, warm: WarmState) -> tuple[LoadedState, LoadedState]:
    """(what a takeover from `warm` loads, what a restart reads), from the same journal."""
    cold = eng.journal.load_open()
    eng.journal.warm = warm
    return eng.journal.load_open(), cold


def test_a_takeover_from_the_warm_state_loads_what_a_restart_reads(eng: Restartable) -> None:
    finished, child = filled_order(eng, "C1", "E1", qty=100)  # finished before the standby starts
    eng.run(new("C2", qty=300))
    eng.journal.sync()
    warm = WarmState.load(eng.journal)
    assert finished in warm.finished and warm.seen == eng.journal._batch
    # after the standby's first read: a partial fill, a correction, a replace, a cancel, a risk change
    working = eng.engine.by_cl_ord_id[("S1", "C2")]
    working_child = next(iter(eng.engine.orders[working].children))
    eng.run(fill(working_child, "E2", 120, OrdStatus.PARTIALLY_FILLED))
    eng.run(c.VenueReport("V", working_child, None, "VO", "K2", ExecType.TRADE_CORRECT, OrdStatus.PARTIALLY_FILLED,
                          Decimal(110), Decimal("9.95"), exec_ref_id="E2"))
    eng.run(new("C3", qty=50), new("C4", qty=70))
    eng.run(c.ReplaceOrder("S1", "C3R", "C3", "AAA", Side.BUY, OrdType.LIMIT, Decimal(60), Decimal("10.00")))
    eng.run(c.CancelOrder("S1", "X4", "C4"))
    eng.run(c.SetRiskLimit("ACC", "max_order_qty", "5000", "ops"))
    # a bust reopens the order that was finished before the standby started
    eng.run(c.VenueReport("V", child, None, "VO", "B1", ExecType.TRADE_CANCEL, OrdStatus.CANCELED,
                          exec_ref_id="E1"))
    assert not eng.engine.orders[finished].is_terminal
    for batch, record in _log(eng, warm.seen):
        warm.apply(batch, record)
    assert finished in warm.stale  # its executions are the tables': read at the takeover
    loaded, cold = takeover(eng, warm)
    assert_same_loaded(loaded, cold)
    assert finished in loaded.orders and working in loaded.orders
    assert any(change.name == "max_order_qty" for change in loaded.risk_changes)  # type: ignore[union-attr]


def test_the_takeover_applies_the_records_the_standby_had_not_read(eng: Restartable) -> None:
    warm = WarmState.load(eng.journal)
    filled_order(eng, "C1", "E1")
    eng.run(new("C2"))
    loaded, cold = takeover(eng, warm)
    assert_same_loaded(loaded, cold)
    assert len(loaded.orders) == 1 and loaded.max_seq == 2


def test_a_standby_behind_the_trimmed_log_takes_over_from_the_tables(eng: Restartable,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    eng.run(new("C1"))
    eng.journal.sync()
    warm = WarmState.load(eng.journal)
    eng.run(new("C2"))
    eng.run(new("C3"))
    eng.journal.sync()
    with eng.journal.engine.begin() as conn:  # the primary trimmed what the standby had not read
        conn.execute(delete(journal_log_t).where(journal_log_t.c.batch <= warm.seen + 1))
    with caplog.at_level(logging.WARNING, logger="oms.journal"):
        loaded, cold = takeover(eng, warm)
    assert "reading the tables instead" in caplog.text
    assert_same_loaded(loaded, cold)
    assert len(loaded.orders) == 3


def _log(eng: Restartable, after: int) -> list[tuple[int, Any]]:
    from oms.journal import read_log

    with eng.journal.engine.connect() as conn:
        return read_log(conn, eng.journal.instance, after, 10_000)
