"""The decider alone: commands in, events and outbound messages out. No database, no sockets, no thread
(oms.decider.Decider; the runner in oms.engine adds those)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from oms import commands as c
from oms import events as ev
from oms.decider import Decider, Decision, EngineConfig
from oms.enums import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecRestatementReason,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from oms.reports import (
    CancelReject,
    ExecutionReport,
    VenueCancel,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
)
from oms.state_machine import IllegalTransition
from sor.static import StaticRouter

D = Decimal


@pytest.fixture
def decider() -> Decider:
    d = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    d.decide([c.VenueSessionUp("V1")])
    return d


def kinds(items: list[object]) -> list[str]:
    return [type(i).__name__ for i in items]


def test_a_new_order_is_accepted_routed_and_acknowledged(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D("150.25"))])
    assert kinds(b.events) == ["OrderAccepted", "ChildRouted"]
    (ack, child) = b.outbound
    assert isinstance(ack, ExecutionReport) and (ack.exec_type, ack.ord_status, ack.leaves_qty) == (
        ExecType.NEW, OrdStatus.NEW, D(100))
    assert isinstance(child, VenueNewOrder) and (child.venue, child.qty, child.price) == ("V1", D(100), D("150.25"))
    assert list(b.dirty) == ["T-1"]


def test_fills_reach_the_client_once_and_a_repeat_is_ignored(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150))])
    child = next(o for o in b.outbound if isinstance(o, VenueNewOrder))
    fill = c.VenueReport("V1", child.child_id, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                         D(40), D("149.5"))
    b = decider.decide([c.VenueReport("V1", child.child_id, None, "VO1", "A1", ExecType.NEW, OrdStatus.NEW), fill,
                        fill])
    assert kinds(b.events) == ["ChildAcked", "ChildFilled"]
    (report,) = [o for o in b.outbound if isinstance(o, ExecutionReport)]
    assert (report.exec_type, report.ord_status, report.last_qty, report.cum_qty, report.leaves_qty) == (
        ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, D(40), D(40), D(60))


def test_cancel_goes_to_the_venue_and_ends_when_it_confirms(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150))])
    child = next(o for o in b.outbound if isinstance(o, VenueNewOrder))
    decider.decide([c.VenueReport("V1", child.child_id, None, "VO1", "A1", ExecType.NEW, OrdStatus.NEW)])
    b = decider.decide([c.CancelOrder("S1", "C2", "C1")])
    assert kinds(b.events) == ["CancelRequested", "ChildCancelRequested"]
    pending, venue_cancel = b.outbound
    assert isinstance(pending, ExecutionReport) and pending.ord_status is OrdStatus.PENDING_CANCEL
    assert isinstance(venue_cancel, VenueCancel)
    b = decider.decide([c.VenueReport("V1", venue_cancel.cancel_id, child.child_id, "VO1", "A2", ExecType.CANCELED,
                                      OrdStatus.CANCELED)])
    (done,) = [o for o in b.outbound if isinstance(o, ExecutionReport)]
    assert (done.exec_type, done.ord_status, done.cl_ord_id, done.orig_cl_ord_id) == (
        ExecType.CANCELED, OrdStatus.CANCELED, "C2", "C1")
    # a second cancel of a finished order is too late
    b = decider.decide([c.CancelOrder("S1", "C3", "C2")])
    (reject,) = b.outbound
    assert isinstance(reject, CancelReject) and reject.reason is CxlRejReason.TOO_LATE_TO_CANCEL


def test_refusals_name_the_rule_and_change_no_order(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "XYZ", Side.BUY, OrdType.LIMIT, D(100), D(150)),
                        c.NewOrder("S1", "C2", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(0), D(150))])
    reasons = [(r.cl_ord_id, r.ord_status, r.ord_rej_reason) for r in b.outbound if isinstance(r, ExecutionReport)]
    assert reasons == [("C1", OrdStatus.REJECTED, OrdRejReason.UNKNOWN_SYMBOL),
                       ("C2", OrdStatus.REJECTED, OrdRejReason.INCORRECT_QUANTITY)]
    assert all(isinstance(e, ev.OrderRejected) for e in b.events)
    assert not any(o.status is OrdStatus.NEW for o in decider.orders.values())


# --- issue 16: Appendix D rules, one test each ----------------------------------------------------
def working(decider: Decider, qty: int = 1000, tif: TimeInForce = TimeInForce.DAY, cl: str = "C1") -> str:
    """A limit order acknowledged by venue V1; returns its child's id."""
    b = decider.decide([c.NewOrder("S1", cl, "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(qty), D(150),
                                   time_in_force=tif)])
    child = next(o for o in b.outbound if isinstance(o, VenueNewOrder)).child_id
    decider.decide([c.VenueReport("V1", child, None, "VO1", f"A-{child}", ExecType.NEW, OrdStatus.NEW)])
    return child


def client_reports(b: Decision) -> list[ExecutionReport]:
    return [o for o in b.outbound if isinstance(o, ExecutionReport)]


def row(r: ExecutionReport) -> tuple[ExecType, OrdStatus, Decimal, Decimal, Decimal, Decimal]:
    return (r.exec_type, r.ord_status, r.order_qty, r.cum_qty, r.leaves_qty, r.last_qty)


def test_status_of_an_unknown_order_echoes_the_requests_symbol_and_side(decider: Decider) -> None:
    (st,) = decider.decide([c.StatusRequest("S1", "NOPE", None, "IBM", "2")]).outbound
    assert isinstance(st, ExecutionReport)
    assert (st.exec_type, st.ord_status, st.ord_rej_reason, st.order_id, st.symbol, st.side) == (
        ExecType.ORDER_STATUS, OrdStatus.REJECTED, OrdRejReason.UNKNOWN_ORDER, "NONE", "IBM", "2")


def test_E1b_a_venues_unsolicited_cancel_reaches_the_client_with_its_restatement_reason(decider: Decider) -> None:
    child = working(decider)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(250), D(150))])
    b = decider.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.CANCELED, OrdStatus.CANCELED,
                                      text="trading halted",
                                      exec_restatement_reason=ExecRestatementReason.CANCEL_ON_TRADING_HALT)])
    (done,) = client_reports(b)
    assert row(done) == (ExecType.CANCELED, OrdStatus.CANCELED, D(1000), D(250), D(0), D(0))
    assert (done.exec_restatement_reason, done.text) == (6, "V1: trading halted")
    assert [e.restatement_reason for e in b.events if isinstance(e, ev.OrderCanceled)] == [6]


def test_J1b_a_bust_after_cancel_executes_nothing_and_restates_the_order(decider: Decider) -> None:
    child = working(decider)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(500), D(50))])
    b = decider.decide([c.CancelOrder("S1", "C2", "C1")])
    cancel = next(o for o in b.outbound if isinstance(o, VenueCancel))
    decider.decide([c.VenueReport("V1", cancel.cancel_id, child, "VO1", "X2", ExecType.CANCELED, OrdStatus.CANCELED)])
    b = decider.decide([c.VenueReport("V1", child, None, "VO1", "X3", ExecType.TRADE_CANCEL, OrdStatus.CANCELED,
                                      exec_ref_id="X1", exec_restatement_reason=ExecRestatementReason.OTHER)])
    (bust,) = client_reports(b)
    assert row(bust) == (ExecType.TRADE_CANCEL, OrdStatus.CANCELED, D(1000), D(0), D(0), D(0))
    assert (bust.last_px, bust.avg_px, bust.exec_restatement_reason) == (D(0), D(0), 99)
    assert not [o for o in b.outbound if isinstance(o, VenueNewOrder)]  # a canceled order is not worked again
    (busted,) = [e for e in b.events if isinstance(e, ev.FillBusted)]
    assert (busted.qty, busted.px) == (D(500), D(50))  # the journal keeps what was taken back


def test_J1d_a_correction_reports_the_corrected_execution_and_restates_avg_px(decider: Decider) -> None:
    child = working(decider)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(500), D(50)),
                    c.VenueReport("V1", child, None, "VO1", "X2", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(500), D(52))])
    b = decider.decide([c.VenueReport("V1", child, None, "VO1", "X3", ExecType.TRADE_CORRECT,
                                      OrdStatus.PARTIALLY_FILLED, D(400), D(50), exec_ref_id="X1")])
    (corr,) = client_reports(b)
    assert row(corr) == (ExecType.TRADE_CORRECT, OrdStatus.PARTIALLY_FILLED, D(1000), D(900), D(100), D(400))
    assert (corr.last_px, corr.avg_px) == (D(50), (D(400 * 50 + 500 * 52) / 900).quantize(D("0.000001")))


def test_broker_ack_new_before_the_venue_answers_and_a_venue_reject_ends_it_canceled(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150))])
    ack, child = b.outbound  # the client's New goes out with the child, not after the venue's answer
    assert isinstance(ack, ExecutionReport) and isinstance(child, VenueNewOrder)
    assert row(ack) == (ExecType.NEW, OrdStatus.NEW, D(100), D(0), D(100), D(0))
    b = decider.decide([c.VenueReport("V1", child.child_id, None, "NONE", "R1", ExecType.REJECTED,
                                      OrdStatus.REJECTED, text="trading halted in IBM")])
    (done,) = client_reports(b)
    assert row(done) == (ExecType.CANCELED, OrdStatus.CANCELED, D(100), D(0), D(0), D(0))
    assert (done.text, done.ord_rej_reason) == ("V1: trading halted in IBM", None)
    assert not [o for o in b.outbound if isinstance(o, VenueNewOrder)]  # a venue's refusal is not retried


def test_A1b_a_venues_done_for_day_ends_a_day_order_done_for_day(decider: Decider) -> None:
    child = working(decider)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(300), D(150))])
    b = decider.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.DONE_FOR_DAY,
                                      OrdStatus.DONE_FOR_DAY)])
    (dfd,) = client_reports(b)
    assert row(dfd) == (ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY, D(1000), D(300), D(0), D(0))
    assert decider.orders["T-1"].is_terminal
    # a day order done for the day is not renewed
    assert decider.decide([c.RenewOrders(datetime.now(UTC))]).outbound == []


def test_H1_a_gtc_order_done_for_the_day_stays_open_and_is_renewed_at_the_session_start(decider: Decider) -> None:
    child = working(decider, tif=TimeInForce.GTC)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                                  D(200), D(150))])
    b = decider.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.DONE_FOR_DAY,
                                      OrdStatus.DONE_FOR_DAY)])
    (dfd,) = client_reports(b)
    assert row(dfd) == (ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY, D(1000), D(200), D(800), D(0))
    assert not [o for o in b.outbound if isinstance(o, VenueNewOrder)]  # not worked again today
    order = decider.orders["T-1"]
    assert not order.is_terminal and order.done_for_day
    (st,) = decider.decide([c.StatusRequest("S1", "C1")]).outbound
    assert isinstance(st, ExecutionReport) and (st.ord_status, st.leaves_qty) == (OrdStatus.DONE_FOR_DAY, D(800))
    b = decider.decide([c.RenewOrders(datetime.now(UTC))])
    restated, new_child = b.outbound
    assert isinstance(restated, ExecutionReport) and isinstance(new_child, VenueNewOrder)
    assert row(restated) == (ExecType.RESTATED, OrdStatus.PARTIALLY_FILLED, D(1000), D(200), D(800), D(0))
    assert restated.exec_restatement_reason == ExecRestatementReason.GT_RENEWAL
    assert (new_child.qty, new_child.time_in_force) == (D(800), TimeInForce.GTC)
    assert kinds(b.events) == ["OrderRenewed", "ChildRouted"]
    assert decider.decide([c.RenewOrders(datetime.now(UTC))]).outbound == []  # renewed once


def test_H1c_a_gtc_order_done_for_the_day_can_be_canceled_before_renewal(decider: Decider) -> None:
    child = working(decider, tif=TimeInForce.GTC)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY)])
    b = decider.decide([c.CancelOrder("S1", "C2", "C1")])
    pending, done = client_reports(b)
    assert row(pending) == (ExecType.PENDING_CANCEL, OrdStatus.PENDING_CANCEL, D(1000), D(0), D(1000), D(0))
    assert row(done) == (ExecType.CANCELED, OrdStatus.CANCELED, D(1000), D(0), D(0), D(0))
    assert not decider.orders["T-1"].done_for_day
    assert decider.decide([c.RenewOrders(datetime.now(UTC))]).outbound == []


def test_renewal_waits_for_a_venue_that_lists_the_symbol(decider: Decider) -> None:
    child = working(decider, tif=TimeInForce.GTC)
    decider.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY),
                    c.VenueSessionDown("V1")])
    assert decider.decide([c.RenewOrders(datetime.now(UTC))]).outbound == []
    b = decider.decide([c.VenueSessionUp("V1")])
    assert [type(o).__name__ for o in b.outbound] == ["ExecutionReport", "VenueNewOrder"]


def test_done_for_day_and_renewal_go_through_the_state_machine() -> None:
    decider = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    decider.decide([c.VenueSessionUp("V1")])
    working(decider, tif=TimeInForce.GTC)
    order = decider.orders["T-1"]
    with pytest.raises(IllegalTransition):
        order.apply(ev.OrderRenewed("T-1"))  # not done for the day
    order.apply(ev.OrderDoneForDay("T-1", "V1: closed", True))
    with pytest.raises(IllegalTransition):
        order.apply(ev.OrderDoneForDay("T-1", "V1: closed", True))
    order.apply(ev.OrderCanceled("T-1", "canceled"))
    with pytest.raises(IllegalTransition):
        order.apply(ev.OrderDoneForDay("T-1", "V1: closed", False))  # a canceled order cannot be done for day


# --- issue 16 item 1: replaces reach the venue as amends ------------------------------------------
def replace(decider: Decider, cl: str, orig: str, qty: int, price: str = "150") -> Decision:
    return decider.decide([c.ReplaceOrder("S1", cl, orig, "IBM", Side.BUY, OrdType.LIMIT, D(qty), D(price))])


def venue_msgs(b: Decision) -> list[object]:
    return [o for o in b.outbound if isinstance(o, VenueNewOrder | VenueCancel | VenueReplace)]


def fill(child: str, qty: int, exec_id: str) -> c.VenueReport:
    return c.VenueReport("V1", child, None, "VO1", exec_id, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, D(qty), D(150))


def replaced(amend: VenueReplace) -> c.VenueReport:
    return c.VenueReport("V1", amend.amend_id, amend.orig_cl_ord_id, "VO1", f"R-{amend.amend_id}", ExecType.REPLACED,
                         OrdStatus.NEW)


def test_quantity_down_goes_to_the_venue_as_an_amend_and_is_replaced_when_the_venue_confirms(
        decider: Decider) -> None:
    child = working(decider)
    decider.decide([fill(child, 100, "X1")])
    b = replace(decider, "C2", "C1", 800)
    assert kinds(b.events) == ["ReplaceRequested", "ChildReplaceRequested"]
    (pending,) = client_reports(b)
    assert row(pending) == (ExecType.PENDING_REPLACE, OrdStatus.PENDING_REPLACE, D(1000), D(100), D(900), D(0))
    (amend,) = venue_msgs(b)  # no cancel, no new order: the venue amends its order
    assert isinstance(amend, VenueReplace)
    assert (amend.orig_cl_ord_id, amend.qty, amend.price) == (child, D(800), D(150))
    b = decider.decide([replaced(amend)])
    (done,) = client_reports(b)
    assert row(done) == (ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, D(800), D(100), D(700), D(0))
    assert (done.cl_ord_id, done.orig_cl_ord_id) == ("C2", "C1")
    assert venue_msgs(b) == []
    ch = decider.orders["T-1"].children[child]
    assert (ch.qty, ch.status, ch.venue_id, ch.amend_id) == (D(800), OrdStatus.PARTIALLY_FILLED, amend.amend_id, "")
    # the venue now reports under the amend's ClOrdID, and our next request names it as OrigClOrdID
    (trade,) = client_reports(decider.decide([fill(amend.amend_id, 50, "X2")]))
    assert row(trade) == (ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, D(800), D(150), D(650), D(50))
    b = decider.decide([c.CancelOrder("S1", "C3", "C2")])
    (cancel,) = venue_msgs(b)
    assert isinstance(cancel, VenueCancel) and cancel.child_id == amend.amend_id


def test_a_price_change_amends_the_child_to_the_new_price(decider: Decider) -> None:
    child = working(decider)
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 1000, "149.50"))
    assert isinstance(amend, VenueReplace) and (amend.orig_cl_ord_id, amend.qty, amend.price) == (
        child, D(1000), D("149.50"))
    (done,) = client_reports(decider.decide([replaced(amend)]))
    assert (done.exec_type, done.price) == (ExecType.REPLACED, D("149.50"))
    assert decider.orders["T-1"].children[child].price == D("149.50")


def test_quantity_up_amends_where_the_plan_keeps_the_venue_and_reroutes_where_it_moves(decider: Decider) -> None:
    child = working(decider)
    decider.decide([fill(child, 100, "X1")])
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 1200))
    assert isinstance(amend, VenueReplace) and amend.qty == D(1200)  # the child's CumQty included
    (done,) = client_reports(decider.decide([replaced(amend)]))
    assert row(done) == (ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, D(1200), D(100), D(1100), D(0))
    # the router now sends IBM to V2: more quantity no longer stays at V1, so cancel-and-reroute
    decider.decide([c.VenueSessionUp("V2")])
    assert isinstance(decider.router, StaticRouter)
    decider.router.venue_by_symbol["IBM"] = "V2"
    b = replace(decider, "C3", "C2", 1500)
    (cancel,) = venue_msgs(b)
    assert isinstance(cancel, VenueCancel) and cancel.child_id == amend.amend_id
    b = decider.decide([c.VenueReport("V1", cancel.cancel_id, amend.amend_id, "VO1", "X9", ExecType.CANCELED,
                                      OrdStatus.CANCELED)])
    (new,) = venue_msgs(b)
    assert isinstance(new, VenueNewOrder) and (new.venue, new.qty) == ("V2", D(1400))
    assert row(client_reports(b)[0]) == (ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, D(1500), D(100), D(1400),
                                         D(0))


def test_a_venue_that_cannot_amend_gets_cancel_and_reroute() -> None:
    decider = Decider(StaticRouter({"IBM": "V1"}, no_amend={"V1"}),
                      EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    decider.decide([c.VenueSessionUp("V1")])
    working(decider)
    (cancel,) = venue_msgs(replace(decider, "C2", "C1", 800))
    assert isinstance(cancel, VenueCancel)


def test_a_venue_refusing_the_amend_leaves_the_order_as_it_was_and_the_next_replace_is_accepted(
        decider: Decider) -> None:
    """App D D.1.c with the venue refusing: OrderCancelReject to the client, the order goes on unchanged."""
    child = working(decider)
    decider.decide([fill(child, 100, "X1")])
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 800))
    assert isinstance(amend, VenueReplace)
    (trade,) = client_reports(decider.decide([fill(child, 50, "X2")]))
    assert row(trade) == (ExecType.TRADE, OrdStatus.PENDING_REPLACE, D(1000), D(150), D(850), D(50))
    b = decider.decide([c.VenueCancelReject("V1", amend.amend_id, child, OrdStatus.PARTIALLY_FILLED,
                                            "trading halted")])
    (rej,) = b.outbound
    assert isinstance(rej, CancelReject)
    assert (rej.cl_ord_id, rej.orig_cl_ord_id, rej.ord_status, rej.reason, rej.response_to) == (
        "C2", "C1", OrdStatus.PARTIALLY_FILLED, CxlRejReason.BROKER_OPTION, CxlRejResponseTo.REPLACE)
    assert rej.text == "V1 refused replace: trading halted"
    order = decider.orders["T-1"]
    assert (order.ord_status, order.order_qty, order.cl_ord_id) == (OrdStatus.PARTIALLY_FILLED, D(1000), "C1")
    assert (order.children[child].status, order.children[child].qty) == (OrdStatus.PARTIALLY_FILLED, D(1000))
    (amend2,) = venue_msgs(replace(decider, "C3", "C1", 600))  # OrigClOrdID: the last accepted, C1
    assert isinstance(amend2, VenueReplace) and (amend2.orig_cl_ord_id, amend2.qty) == (child, D(600))
    (done,) = client_reports(decider.decide([replaced(amend2)]))
    assert row(done) == (ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, D(600), D(150), D(450), D(0))


def test_C3b_a_fill_up_to_the_new_quantity_crossing_the_amend_ends_the_order_filled(decider: Decider) -> None:
    child = working(decider)
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 700))
    assert isinstance(amend, VenueReplace)
    (trade,) = client_reports(decider.decide([fill(child, 700, "X1")]))
    assert row(trade) == (ExecType.TRADE, OrdStatus.PENDING_REPLACE, D(1000), D(700), D(300), D(700))
    (done,) = client_reports(decider.decide([replaced(amend)]))
    assert row(done) == (ExecType.REPLACED, OrdStatus.FILLED, D(700), D(700), D(0), D(0))
    assert decider.orders["T-1"].children[child].status is OrdStatus.FILLED


def test_C3c_a_fill_beyond_the_new_quantity_crossing_the_amend_ends_it_filled_at_cum_qty(decider: Decider) -> None:
    child = working(decider)
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 700))
    assert isinstance(amend, VenueReplace)
    decider.decide([fill(child, 800, "X1")])
    (done,) = client_reports(decider.decide([replaced(amend)]))
    assert row(done) == (ExecType.REPLACED, OrdStatus.FILLED, D(800), D(800), D(0), D(0))
    ch = decider.orders["T-1"].children[child]
    assert (ch.qty, ch.cum_qty, ch.status) == (D(800), D(800), OrdStatus.FILLED)  # never below its CumQty


def test_C2a_a_fill_completing_the_order_refuses_the_pending_amend_too_late(decider: Decider) -> None:
    child = working(decider)
    decider.decide([fill(child, 100, "X1")])
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 1000, "149.90"))
    assert isinstance(amend, VenueReplace)
    b = decider.decide([fill(child, 900, "X2")])
    trade, rej = b.outbound
    assert isinstance(trade, ExecutionReport) and isinstance(rej, CancelReject)
    assert row(trade) == (ExecType.TRADE, OrdStatus.PENDING_REPLACE, D(1000), D(1000), D(0), D(900))
    assert (rej.cl_ord_id, rej.ord_status, rej.reason) == ("C2", OrdStatus.FILLED, CxlRejReason.TOO_LATE_TO_CANCEL)
    # the venue's own refusal (its order was filled) changes nothing more
    b = decider.decide([c.VenueCancelReject("V1", amend.amend_id, child, OrdStatus.FILLED, "order not open")])
    assert (b.events, b.outbound) == ([], [])


def test_an_unanswered_amend_is_asked_about_then_refused(decider: Decider) -> None:
    child = working(decider)
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 800))
    assert isinstance(amend, VenueReplace)
    timeout = decider.config.venue_ack_timeout_s
    now = time.monotonic()
    (ask,) = decider.decide([c.Tick(now + timeout + 0.1)]).outbound
    assert isinstance(ask, VenueStatusRequest) and ask.child_id == child
    (rej,) = decider.decide([c.Tick(now + 2 * timeout + 0.2)]).outbound
    assert isinstance(rej, CancelReject) and rej.text == "no answer from V1 to the replace"
    assert decider.orders["T-1"].children[child].status is OrdStatus.NEW
    # a Replaced arriving after we gave up no longer applies
    assert decider.decide([replaced(amend)]).events == []


def test_replace_down_to_cum_qty_still_cancels_the_child_and_ends_filled(decider: Decider) -> None:
    child = working(decider)
    decider.decide([fill(child, 600, "X1")])
    (cancel,) = venue_msgs(replace(decider, "C2", "C1", 500))
    assert isinstance(cancel, VenueCancel)
    b = decider.decide([c.VenueReport("V1", cancel.cancel_id, child, "VO1", "X2", ExecType.CANCELED,
                                      OrdStatus.CANCELED)])
    assert row(client_reports(b)[0]) == (ExecType.REPLACED, OrdStatus.FILLED, D(600), D(600), D(0), D(0))


def test_child_amends_go_through_the_child_state_machine(decider: Decider) -> None:
    b = decider.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150))])
    order = decider.orders["T-1"]
    child = next(o for o in b.outbound if isinstance(o, VenueNewOrder)).child_id
    with pytest.raises(IllegalTransition):  # not acknowledged yet: nothing to amend at the venue
        order.apply(ev.ChildReplaceRequested("T-1", child, "A1", D(50), D(150)))
    with pytest.raises(IllegalTransition):  # no amend outstanding
        order.apply(ev.ChildReplaced("T-1", child))
    decider.decide([c.VenueReport("V1", child, None, "VO1", "A", ExecType.NEW, OrdStatus.NEW)])
    order.apply(ev.ChildReplaceRequested("T-1", child, "A1", D(50), D(150)))
    with pytest.raises(IllegalTransition):  # one amend at a time
        order.apply(ev.ChildReplaceRequested("T-1", child, "A2", D(40), D(150)))
    order.apply(ev.ChildReplaceRefused("T-1", child, "no"))
    with pytest.raises(IllegalTransition):
        order.apply(ev.ChildReplaceRefused("T-1", child, "no"))


def test_a_reconnected_venue_naming_the_amends_cl_ord_id_in_its_status_completes_the_replace(
        decider: Decider) -> None:
    """The venue's Replaced was lost with the session: its status answer, naming the order by the amend's
    ClOrdID, shows that it amended it."""
    child = working(decider)
    (amend,) = venue_msgs(replace(decider, "C2", "C1", 800))
    assert isinstance(amend, VenueReplace)
    decider.decide([c.VenueSessionDown("V1")])
    (ask,) = decider.decide([c.VenueSessionUp("V1")]).outbound
    assert isinstance(ask, VenueStatusRequest) and ask.child_id == child
    b = decider.decide([c.VenueReport("V1", amend.amend_id, None, "VO1", "0", ExecType.ORDER_STATUS, OrdStatus.NEW,
                                      cum_qty=D(0), leaves_qty=D(800))])
    (done,) = client_reports(b)
    assert row(done) == (ExecType.REPLACED, OrdStatus.NEW, D(800), D(0), D(800), D(0))
    # a status still naming the old ClOrdID would have left the replace pending
    assert decider.orders["T-1"].children[child].venue_id == amend.amend_id


def test_a_request_sent_again_with_possdup_or_possresend_is_answered_with_its_status_not_rejected(
        decider: Decider) -> None:
    """After a takeover the standby may expect a lower MsgSeqNum than the client sends (the FIX store
    writes numbers received lazily) and asks for a resend: what the old primary had already taken comes
    back with PossDupFlag=Y. Such a repeat gets its order's status; the same ClOrdID without the flag is
    still a duplicate."""
    working(decider)
    b = decider.decide([c.CancelOrder("S1", "C2", "C1")])
    assert kinds(b.events) == ["CancelRequested", "ChildCancelRequested"]
    for repeat in (c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(1000), D(150), poss_resend=True),
                   c.CancelOrder("S1", "C2", "C1", poss_resend=True),
                   c.ReplaceOrder("S1", "C2", "C1", "IBM", Side.BUY, OrdType.LIMIT, D(900), D(150),
                                  poss_resend=True)):
        b = decider.decide([repeat])
        (status,) = b.outbound
        assert not b.events
        assert isinstance(status, ExecutionReport)
        assert (status.exec_type, status.ord_status, status.cl_ord_id) == (
            ExecType.ORDER_STATUS, OrdStatus.PENDING_CANCEL, repeat.cl_ord_id)
    b = decider.decide([c.CancelOrder("S1", "C2", "C1")])
    (reject,) = b.outbound
    assert isinstance(reject, CancelReject) and reject.reason is CxlRejReason.DUPLICATE_CL_ORD_ID


def test_the_codec_marks_possdup_and_possresend_requests_as_maybe_sent_before() -> None:
    from fix_engine import codec
    base = "8=FIX.4.4\x019=0\x0135=F\x0149=C\x0156=O\x0134=5\x0111=C2\x0141=C1\x0155=IBM\x0154=1\x01"
    assert not codec.decode_client(base + "10=000\x01", "S1").poss_resend  # type: ignore[union-attr]
    for flag in ("43=Y", "97=Y"):
        cmd = codec.decode_client(base + flag + "\x0110=000\x01", "S1")
        assert isinstance(cmd, c.CancelOrder) and cmd.poss_resend


def test_the_gtd_job_expires_the_orders_that_are_due_and_only_those(decider: Decider) -> None:
    """GTD orders are filed by ExpireTime: each run of the job takes those due, whatever else is working; an
    order that ended first is not expired, and one a bust reopens after its ExpireTime expires at the next run."""
    now = datetime.now(UTC)
    due = {}
    for k, minutes in enumerate((30, 10, 20, 60)):
        b = decider.decide([c.NewOrder("S1", f"G{k}", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150),
                                       time_in_force=TimeInForce.GTD,
                                       expire_time=now + timedelta(minutes=minutes))])
        due[minutes] = next(iter(b.dirty))
    working(decider, cl="DAY1")  # a DAY order is never the GTD job's
    filled = due[20]
    child = next(iter(decider.orders[filled].children.values()))
    decider.decide([c.VenueReport("V1", child.child_id, None, "VO", "A", ExecType.NEW, OrdStatus.NEW),
                    c.VenueReport("V1", child.child_id, None, "VO", "X1", ExecType.TRADE, OrdStatus.FILLED, D(100),
                                  D(150))])
    assert decider.orders[filled].status is OrdStatus.FILLED

    def expired_by(minutes: int) -> list[str]:
        b = decider.decide([c.ExpireOrders("gtd", now + timedelta(minutes=minutes, seconds=1))])
        return [e.order_id for e in b.events if isinstance(e, ev.ExpiryRequested)]

    assert expired_by(5) == []
    assert expired_by(10) == [due[10]]
    assert expired_by(25) == []  # due[20] filled before its ExpireTime
    bust = c.VenueReport("V1", child.child_id, None, "VO", "B1", ExecType.TRADE_CANCEL, OrdStatus.NEW,
                         exec_ref_id="X1")
    decider.decide([bust])
    assert not decider.orders[filled].is_terminal
    assert expired_by(30) == [filled, due[30]]  # reopened after its ExpireTime: expires at the next run
    assert expired_by(90) == [due[60]]
    assert expired_by(120) == []
    assert decider.decide([c.ExpireOrders("day", now)]).events  # the DAY order: the session end's job
