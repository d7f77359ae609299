"""Issue 16: FIX 4.4 Appendix D sequences a broker gets wrong easily, over real client and venue sessions.

Each test asserts the exact sequence the client receives - (ExecType, OrdStatus, OrderQty, CumQty,
LeavesQty, LastQty) - and what the venue simulator received and sent for the order's children, by
MsgType (VenueSimulator.exchanged). SQLite only, like test_lifecycle.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fix_engine import codec
from oms.enums import Side
from tests.conftest import Stack
from tests.e2e.scenario import (
    BUST,
    CANCELED,
    DFD,
    NEW,
    PARTIAL,
    PCANCEL,
    PREPLACE,
    REJECTED,
    REPLACED,
    STATUS,
    TRADE,
    child_of,
    rest_ibm,
    seq,
    settled,
    sim,
    venue_seq,
    wait_at_venue,
)

RESTATED = "D"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.mark.parametrize("begin,comp_id", [("FIX.4.4", "CLIENT1"), ("FIX.4.2", "CLIENT2")])
def test_G1_status_of_an_unknown_order_carries_the_required_fields(stack: Stack, begin: str, comp_id: str) -> None:
    """The answer echoes the request's Symbol and Side: FIX 4.2 requires Symbol(55) on an ExecutionReport,
    and the client's QuickFIX answers one without it with a session Reject instead of delivering it."""
    client = stack.client(comp_id, begin)
    client.status("NOPE", "IBM", "2")
    st = client.wait_for(lambda m: m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT
                         and m.get(codec.CL_ORD_ID) == "NOPE")
    assert (st[codec.SYMBOL], st[codec.SIDE], st[codec.ORD_STATUS], st[codec.ORDER_ID]) == ("IBM", "2", REJECTED,
                                                                                          "NONE")
    if begin == "FIX.4.4":
        assert (st[codec.EXEC_TYPE], st[codec.ORD_REJ_REASON]) == (STATUS, "5")
    else:  # FIX 4.2: a status answer is ExecTransType 3 with ExecType = the status
        assert (st[codec.EXEC_TRANS_TYPE], st[codec.EXEC_TYPE]) == ("3", REJECTED)
    assert (st[codec.LEAVES_QTY], st[codec.CUM_QTY], st[codec.AVG_PX]) == ("0", "0", "0")


def test_E1b_unsolicited_cancel_passes_the_venues_restatement_reason(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 250)
    ack = c1.wait_report(cl, status=PARTIAL)
    child = child_of(stack, ack[codec.ORDER_ID])
    sim(stack).cancel_unsolicited("FIXOMS", child, "trading halted", restatement_reason=6)
    done = c1.wait_report(cl, status=CANCELED)
    assert (done[codec.EXEC_RESTATEMENT_REASON], done[codec.TEXT]) == ("6", "VENUE-B: trading halted")
    assert seq(c1, cl) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "250", "750", "250"),
        (CANCELED, CANCELED, "1000", "250", "0", "0"),
    ]
    settled(lambda: venue_seq(stack, ack[codec.ORDER_ID]), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "250", "750", "250"),
        ("out", "8", CANCELED, CANCELED, "1000", "250", "0", "0"),
    ])


def test_J1b_bust_of_a_canceled_order_executes_nothing_and_restates(stack: Stack) -> None:
    """App D J.1.b: the TradeCancel of a canceled order keeps OrdStatus Canceled, LastQty 0, and restates
    CumQty (and AvgPx); the busted fill leaves the account's position. (Step 8 of J.1.b, a new fill on
    the canceled order, the broker keeps: a late fill never follows a Canceled report to the client.)"""
    from fixoms.blotter import positions_report

    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 500)
    fill = c1.wait_report(cl, status=PARTIAL)
    order_id = fill[codec.ORDER_ID]
    x = c1.cancel(cl, "IBM", "1", 1000)
    c1.wait_report(x, status=CANCELED)
    stack.app.journal.sync()  # type: ignore[attr-defined]
    assert [(p.symbol, p.qty) for p in positions_report(stack.app.journal.engine).positions] == [  # type: ignore[attr-defined]
        ("IBM", Decimal(500))]
    venue.bust_last_fill("FIXOMS", child_of(stack, order_id))
    # ClOrdID: the order's latest, the cancel's (as FIX 4.2's D35 shows; 4.4's J.1.b shows the original)
    bust = c1.wait_report(x, exec_type=BUST)
    assert (bust[codec.EXEC_REF_ID], bust[codec.AVG_PX], bust[codec.LAST_PX]) == (fill[codec.EXEC_ID], "0", "0")
    assert seq(c1, cl, x) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "500", "500", "500"),
        (PCANCEL, PCANCEL, "1000", "500", "500", "0"),
        (CANCELED, CANCELED, "1000", "500", "0", "0"),
        (BUST, CANCELED, "1000", "0", "0", "0"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "500", "500", "500"),
        ("in", "F", "", "", "1000", "", "", ""),
        ("out", "8", CANCELED, CANCELED, "1000", "500", "0", "0"),
        ("out", "8", BUST, CANCELED, "1000", "0", "0", "0"),
    ])
    stack.app.journal.sync()  # type: ignore[attr-defined]
    assert [p.qty for p in positions_report(stack.app.journal.engine).positions if p.qty] == []  # type: ignore[attr-defined]


def test_broker_ack_then_a_venue_rejection_reaches_the_client_as_canceled(stack: Stack) -> None:
    """The broker-ack model (docs/rules-of-engagement.md): New on acceptance, before any venue has
    answered; a venue's rejection afterwards ends the order Canceled with the venue's reason (the
    client's order was accepted, so it is not Rejected)."""
    c1 = stack.client()
    venue = sim(stack)
    with venue.paused():  # the venue takes nothing until the block ends
        cl = c1.new_order("IBM", "1", 100, price="150.00")
        ack = c1.wait_report(cl, status=NEW)
        order_id = ack[codec.ORDER_ID]
        assert venue_seq(stack, order_id) == []  # acknowledged while the venue had seen nothing of it
        venue.halt("IBM", True, "volatility auction")  # so the venue refuses the child when it gets it
    try:
        done = c1.wait_report(cl, status=CANCELED)
    finally:
        venue.halt("IBM", False)
    assert done[codec.TEXT] == "VENUE-B: trading halted in IBM"
    assert seq(c1, cl) == [(NEW, NEW, "100", "0", "100", "0"), (CANCELED, CANCELED, "100", "0", "0", "0")]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "100", "", "", ""),
        ("out", "8", REJECTED, REJECTED, "0", "0", "0", "0"),
    ])


def test_A1b_venue_done_for_day_ends_a_day_order_done_for_day(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 200)
    c1.wait_report(cl, status=PARTIAL)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 100)
    ack = c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.CUM_QTY) == "300")
    order_id = ack[codec.ORDER_ID]
    venue.done_for_day("FIXOMS", child_of(stack, order_id))
    c1.wait_report(cl, status=DFD)
    assert seq(c1, cl) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "200", "800", "200"),
        (TRADE, PARTIAL, "1000", "300", "700", "100"),
        (DFD, DFD, "1000", "300", "0", "0"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "200", "800", "200"),
        ("out", "8", TRADE, PARTIAL, "1000", "300", "700", "100"),
        ("out", "8", DFD, DFD, "1000", "300", "0", "0"),
    ])


def test_H1d_gtc_done_for_day_survives_a_restart_is_renewed_at_session_start_then_replaced(stack: Stack) -> None:
    """App D H.1.d: GTC partly filled, DoneForDay (LeavesQty kept), Restated (378=1) the next morning and
    worked again at a venue with the rest, then a replace increasing the quantity. The engine restarts
    while the order is done for the day; the session-start job (the real scheduled job) renews it."""
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 1000, price="150.00", tif="1")
    order_id = c1.wait_report(cl, status=NEW)[codec.ORDER_ID]
    wait_at_venue(stack, order_id)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 200)
    c1.wait_report(cl, status=PARTIAL)
    sim(stack).done_for_day("FIXOMS", child_of(stack, order_id))
    c1.wait_report(cl, status=DFD)

    stack.stop_engine()
    stack.start_engine()
    c1.status(cl, "IBM", "1")
    st = c1.wait_report(cl, exec_type=STATUS, timeout=20)
    assert (st[codec.ORD_STATUS], st[codec.LEAVES_QTY], st[codec.CUM_QTY]) == (DFD, "800", "200")

    stack.app.jobs.run_now("renew_gt")  # type: ignore[attr-defined]  # what the session-start cron runs
    restated = c1.wait_report(cl, exec_type=RESTATED)
    assert restated[codec.EXEC_RESTATEMENT_REASON] == "1"
    wait_at_venue(stack, order_id)
    r = c1.replace(cl, "IBM", "1", 1500, price="150.00")
    c1.wait_report(r, exec_type=REPLACED)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "200", "800", "200"),
        (DFD, DFD, "1000", "200", "800", "0"),
        (STATUS, DFD, "1000", "200", "800", "0"),  # asked after the restart: still done for the day
        (RESTATED, PARTIAL, "1000", "200", "800", "0"),
        (PREPLACE, PREPLACE, "1000", "200", "800", "0"),
        (REPLACED, PARTIAL, "1500", "200", "1300", "0"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "200", "800", "200"),
        ("out", "8", DFD, DFD, "1000", "200", "0", "0"),
        ("in", "D", "", "", "800", "", "", ""),  # the renewal: the rest goes to the venue again
        ("out", "8", NEW, NEW, "800", "0", "800", "0"),
        ("in", "G", "", "", "1300", "", "", ""),  # the replace: the venue amends the renewed child
        ("out", "8", REPLACED, NEW, "1300", "0", "1300", "0"),
    ])
