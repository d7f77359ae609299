"""A restart loads only working orders; finished ones are read back from the journal when something
names them. These tests restart an engine over a real journal (SQLite and PostgreSQL) and check that a
finished order nobody has asked for yet is answered exactly as if it had stayed in memory
(docs/rules-of-engagement.md): cancel and replace are too late, other sessions see it as unknown, a
reused ClOrdID is a duplicate, a venue's repeated ExecID is ignored, a bust reopens it, and risk
counts its fills the same.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oms import commands as c
from oms.engine import Engine, EngineConfig
from oms.enums import CxlRejReason, ExecType, OrdRejReason, OrdStatus, OrdType, Side
from oms.journal import Journal
from oms.risk import RiskEngine
from oms.risk.limits import RiskConfig
from oms.risk_gate import RiskGateAdapter
from sor.static import StaticRouter
from tests.oms.test_engine_properties import Client, Venue

PX = Decimal("10.00")


class Restartable:
    """An engine over one journal that can be thrown away and started again from it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.journal = Journal.open(url, "T")
        self.journal.create_schema()
        self.engine, self.client, self.venue, self.risk = self._engine()

    def _engine(self) -> tuple[Engine, Client, Venue, RiskEngine]:
        # No duplicate-content window: the tests send the same order content on purpose.
        client, venue, risk = Client(), Venue(), RiskEngine(RiskConfig(duplicate_window=0.0))
        engine = Engine(self.journal, StaticRouter({"AAA": "V"}), client, {"V": venue},
                        EngineConfig(instance="T", symbols=frozenset({"AAA"}), tick_s=0))
        engine.risk = RiskGateAdapter(risk, lambda symbol: PX)
        engine.recover()
        engine.venues_up.add("V")
        return engine, client, venue, risk

    def restart(self) -> None:
        self.journal.close(sent=False)  # its projector thread stops after a last pass, as at a stop
        self.journal.engine.dispose()
        self.journal = Journal.open(self.url, "T")
        self.engine, self.client, self.venue, self.risk = self._engine()

    def run(self, *commands: Any) -> None:
        assert self.engine.process(list(commands)) == []

    def held(self, order_id: str) -> bool:
        """In memory, without reading the journal (the lookups read it on a miss)."""
        return dict.__contains__(self.engine.orders, order_id)

    def close(self) -> None:
        # The projector thread too: one still in a pass holds locks the next test's reset of the database
        # (DROP SCHEMA) deadlocks with.
        self.journal.close(sent=False)
        self.journal.engine.dispose()


@pytest.fixture
def eng(db_url: str) -> Any:
    r = Restartable(db_url)
    yield r
    r.close()


def new(cl: str, qty: int = 100, session: str = "S1", side: Side = Side.BUY, **kw: Any) -> c.NewOrder:
    return c.NewOrder(session, cl, "ACC", "AAA", side, OrdType.LIMIT, Decimal(qty), PX, **kw)


def fill(child_id: str, exec_id: str, qty: int, status: OrdStatus = OrdStatus.FILLED,
         px: Decimal = PX) -> c.VenueReport:
    return c.VenueReport("V", child_id, None, "VO", exec_id, ExecType.TRADE, status, Decimal(qty), px)


def filled_order(eng: Restartable, cl: str, exec_id: str, qty: int = 100) -> tuple[str, str]:
    """A NewOrder filled in one execution: (order id, child id)."""
    eng.run(new(cl, qty))
    order_id = eng.engine.by_cl_ord_id[("S1", cl)]
    child_id = next(iter(eng.engine.orders[order_id].children))
    eng.run(fill(child_id, exec_id, qty))
    assert eng.engine.orders[order_id].status is OrdStatus.FILLED
    return order_id, child_id


def test_restart_loads_only_working_orders(eng: Restartable) -> None:
    done, _ = filled_order(eng, "C1", "E1")
    eng.run(new("C2"))
    working = eng.engine.by_cl_ord_id[("S1", "C2")]
    eng.restart()
    assert eng.held(working) and not eng.held(done)
    assert eng.engine.orders[done].status is OrdStatus.FILLED  # read back when named
    assert eng.held(done)


def test_cancel_and_replace_of_a_finished_order_are_too_late(eng: Restartable) -> None:
    done, _ = filled_order(eng, "C1", "E1")
    eng.restart()
    eng.run(c.CancelOrder("S1", "X1", "C1"))
    eng.run(c.ReplaceOrder("S1", "X2", "C1", "AAA", Side.BUY, OrdType.LIMIT, Decimal(200), PX))
    cancel, replace = eng.client.rejects
    assert (cancel.order_id, cancel.reason, cancel.ord_status) == (done, CxlRejReason.TOO_LATE_TO_CANCEL,
                                                                   OrdStatus.FILLED)
    assert (replace.order_id, replace.reason, replace.ord_status) == (done, CxlRejReason.TOO_LATE_TO_CANCEL,
                                                                      OrdStatus.FILLED)
    # Another session's finished order is unknown to this one, as any of its orders is.
    eng.run(c.CancelOrder("S2", "X3", "C1"))
    assert eng.client.rejects[-1].reason is CxlRejReason.UNKNOWN_ORDER
    # A cancel reusing a ClOrdID of a finished order (ClOrdID in the journal only) is a duplicate.
    eng.run(new("C9"))
    eng.restart()
    eng.run(c.CancelOrder("S1", "C1", "C9"))
    assert eng.client.rejects[-1].reason is CxlRejReason.DUPLICATE_CL_ORD_ID


def test_status_of_a_finished_order(eng: Restartable) -> None:
    done, _ = filled_order(eng, "C1", "E1", qty=300)
    eng.restart()
    eng.run(c.StatusRequest("S1", "C1"), c.StatusRequest("S1", "", order_id=done), c.StatusRequest("S2", "C1"))
    by_cl, by_id, other = eng.client.reports
    for r in (by_cl, by_id):
        assert (r.exec_type, r.ord_status, r.cum_qty, r.leaves_qty) == (ExecType.ORDER_STATUS, OrdStatus.FILLED,
                                                                       Decimal(300), Decimal(0))
    assert (other.order_id, other.ord_rej_reason) == ("NONE", OrdRejReason.UNKNOWN_ORDER)


def test_new_order_reusing_a_finished_orders_cl_ord_id_is_a_duplicate(eng: Restartable) -> None:
    done, _ = filled_order(eng, "C1", "E1")
    eng.restart()
    eng.run(new("C1", qty=5))
    r = eng.client.reports[-1]
    assert (r.order_id, r.ord_status, r.ord_rej_reason) == ("NONE", OrdStatus.REJECTED, OrdRejReason.DUPLICATE_ORDER)
    # PossResend of the order we already have: its status, not a new order.
    eng.run(new("C1", poss_resend=True))
    r = eng.client.reports[-1]
    assert (r.order_id, r.exec_type, r.ord_status) == (done, ExecType.ORDER_STATUS, OrdStatus.FILLED)
    # Another session may use the same ClOrdID.
    eng.run(new("C1", session="S2"))
    assert eng.client.reports[-1].exec_type is ExecType.NEW


def test_replaced_then_filled_order_is_found_by_its_replace_cl_ord_id(eng: Restartable) -> None:
    eng.run(new("C1", qty=100))
    order_id = eng.engine.by_cl_ord_id[("S1", "C1")]
    first = next(iter(eng.engine.orders[order_id].children))
    eng.run(c.ReplaceOrder("S1", "R1", "C1", "AAA", Side.BUY, OrdType.LIMIT, Decimal(50), PX))
    eng.run(c.VenueReport("V", f"{first}~2", first, "VO", "X", ExecType.CANCELED, OrdStatus.CANCELED))
    order = eng.engine.orders[order_id]
    assert (order.cl_ord_id, order.order_qty) == ("R1", Decimal(50))
    second = [cid for cid in order.children if cid != first][0]
    eng.run(fill(second, "E1", 50))
    eng.restart()
    assert not eng.held(order_id)
    eng.run(c.CancelOrder("S1", "X1", "R1"))
    assert eng.client.rejects[-1].reason is CxlRejReason.TOO_LATE_TO_CANCEL
    eng.run(new("R1"))
    assert eng.client.reports[-1].ord_rej_reason is OrdRejReason.DUPLICATE_ORDER


def test_repeated_venue_exec_id_of_a_finished_order_is_ignored(eng: Restartable) -> None:
    done, child = filled_order(eng, "C1", "E1")
    eng.restart()
    eng.run(fill(child, "E1", 100))
    assert eng.client.reports == []
    order = eng.engine.orders[done]
    assert (order.status, order.cum_qty) == (OrdStatus.FILLED, Decimal(100))
    assert eng.journal.load().orders[done].cum_qty == Decimal(100)


def test_bust_reopens_a_finished_order_and_risk_takes_its_fill_back(eng: Restartable) -> None:
    done, child = filled_order(eng, "C1", "E1", qty=100)
    filled_order(eng, "C2", "E2", qty=40)
    before = eng.risk.snapshot()["accounts"]
    eng.restart()
    assert eng.risk.snapshot()["accounts"] == before  # the finished fills are counted without loading them
    eng.run(c.VenueReport("V", child, None, "VO", "B1", ExecType.TRADE_CANCEL, OrdStatus.CANCELED,
                          exec_ref_id="E1"))
    bust = eng.client.reports[0]
    assert (bust.order_id, bust.exec_type, bust.cum_qty) == (done, ExecType.TRADE_CANCEL, Decimal(0))
    order = eng.engine.orders[done]
    assert order.status is OrdStatus.NEW and not order.is_terminal
    # The broker works the residual again: a new child at the venue.
    assert [cid for cid in eng.venue.children if cid != child]
    sx = eng.risk.snapshot()["accounts"]["ACC"]["exposure"]
    assert sx["symbols"]["AAA"]["position"] == "40"  # only C2's fill stands
    assert sx["filled_notional"] == "400"
    assert eng.risk.exposure.recompute()["ACC"] == eng.risk.exposure.accounts["ACC"]
    # The same bust again is ignored, also after another restart.
    eng.run(c.VenueReport("V", child, None, "VO", "B1", ExecType.TRADE_CANCEL, OrdStatus.CANCELED,
                          exec_ref_id="E1"))
    assert len([r for r in eng.client.reports if r.exec_type is ExecType.TRADE_CANCEL]) == 1
    eng.restart()
    assert eng.held(done)  # working again: loaded at the restart
    eng.run(c.VenueReport("V", child, None, "VO", "B1", ExecType.TRADE_CANCEL, OrdStatus.CANCELED,
                          exec_ref_id="E1"))
    assert eng.client.reports == []
    assert eng.engine.orders[done].cum_qty == Decimal(0)


def test_risk_after_restart_matches_risk_before(eng: Restartable) -> None:
    filled_order(eng, "C1", "E1", qty=100)
    eng.run(new("C2", qty=300, side=Side.SELL))
    order_id = eng.engine.by_cl_ord_id[("S1", "C2")]
    child = next(iter(eng.engine.orders[order_id].children))
    eng.run(fill(child, "E2", 120, OrdStatus.PARTIALLY_FILLED, px=Decimal("10.05")))
    eng.run(c.CancelOrder("S1", "X2", "C2"))
    eng.run(c.VenueReport("V", f"{child}~3", child, "VO", "X", ExecType.CANCELED, OrdStatus.CANCELED))
    assert eng.engine.orders[order_id].status is OrdStatus.CANCELED
    eng.run(new("C3", qty=70))
    before = eng.risk.snapshot()["accounts"]
    eng.restart()
    assert eng.risk.snapshot()["accounts"] == before
    # A failed commit rebuilds risk again: nothing may count twice.
    eng.engine.recover()
    assert eng.risk.snapshot()["accounts"] == before


def test_a_correction_repeated_after_a_restart_reports_nothing(eng: Restartable) -> None:
    """A restart keeps executions, not a correction's own ExecID; the venue repeating the correction (e.g.
    answering our resend request after a takeover) changes nothing and reports nothing."""
    done, child = filled_order(eng, "C1", "E1", qty=100)
    correction = c.VenueReport("V", child, None, "VO", "K1", ExecType.TRADE_CORRECT, OrdStatus.FILLED,
                               Decimal(100), Decimal("9.90"), exec_ref_id="E1")
    eng.run(correction)
    (report,) = [r for r in eng.client.reports if r.exec_type is ExecType.TRADE_CORRECT]
    assert (report.exec_type, report.last_px, report.avg_px) == (ExecType.TRADE_CORRECT, Decimal("9.90"),
                                                                 Decimal("9.90"))
    eng.restart()
    eng.run(correction)
    assert eng.client.reports == []
    order = eng.engine.orders[done]
    assert (order.cum_qty, order.avg_px) == (Decimal(100), Decimal("9.90"))
