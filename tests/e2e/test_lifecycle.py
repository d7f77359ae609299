"""FIX 4.4 Vol 4 Appendix D scenarios that apply to a broker, over real client and venue sessions.

Each test asserts the exact (ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty) sequence the
client receives. Races (a fill crossing a cancel) are made to happen by pausing the venue simulator.
SQLite only: the database paths are covered by test_spine on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fix_engine import codec
from oms import commands as c
from oms.enums import Side
from tests.conftest import Stack
from tests.e2e.scenario import (
    BUST,
    CANCELED,
    CORRECT,
    EXPIRED,
    FILLED,
    NEW,
    PARTIAL,
    PCANCEL,
    PREPLACE,
    REJECTED,
    REPLACED,
    STATUS,
    TRADE,
    rest_ibm,
    seq,
    sim,
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


def test_A1_filled_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 400)
    c1.wait_report(cl, status=PARTIAL)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 600)
    c1.wait_report(cl, status=FILLED)
    assert seq(c1, cl) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "400", "600", "400"),
        (TRADE, FILLED, "1000", "1000", "0", "600"),
    ]


def test_B1a_cancel_of_unfilled_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    x = c1.cancel(cl, "IBM", "1", 1000)
    c1.wait_report(x, status=CANCELED)
    assert seq(c1, cl, x) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (PCANCEL, PCANCEL, "1000", "0", "1000", "0"),
        (CANCELED, CANCELED, "1000", "0", "0", "0"),
    ]


def test_B1b_fill_crosses_cancel_of_partially_filled_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 300)
    c1.wait_report(cl, status=PARTIAL)
    with venue.paused():
        x = c1.cancel(cl, "IBM", "1", 1000)
        c1.wait_report(x, status=PCANCEL)
        venue.house_order("IBM", Side.SELL, Decimal("150.00"), 200)  # reaches us before the cancel
        c1.wait_report(cl, status=PCANCEL, exec_type=TRADE)
    c1.wait_report(x, status=CANCELED)
    assert seq(c1, cl, x) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "300", "700", "300"),
        (PCANCEL, PCANCEL, "1000", "300", "700", "0"),
        (TRADE, PCANCEL, "1000", "500", "500", "200"),
        (CANCELED, CANCELED, "1000", "500", "0", "0"),
    ]


def test_B2_cancel_refused_when_fill_completes_the_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    with venue.paused():
        x = c1.cancel(cl, "IBM", "1", 1000)
        c1.wait_report(x, status=PCANCEL)
        venue.house_order("IBM", Side.SELL, Decimal("150.00"), 1000)
        c1.wait_report(cl, exec_type=TRADE)
    rej = c1.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT)
    assert (rej[codec.CL_ORD_ID], rej[codec.ORIG_CL_ORD_ID], rej[codec.ORD_STATUS]) == (x, cl, FILLED)
    assert (rej[codec.CXL_REJ_REASON], rej[codec.CXL_REJ_RESPONSE_TO]) == ("0", "1")
    assert seq(c1, cl, x) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (PCANCEL, PCANCEL, "1000", "0", "1000", "0"),
        (TRADE, PCANCEL, "1000", "1000", "0", "1000"),
    ]


def test_C1a_replace_increases_quantity_and_fill_crosses_it(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 100)
    c1.wait_report(cl, status=PARTIAL)
    with venue.paused():
        r = c1.replace(cl, "IBM", "1", 1200, price="150.00")
        c1.wait_report(r, status=PREPLACE)
        venue.house_order("IBM", Side.SELL, Decimal("150.00"), 200)
        c1.wait_report(cl, status=PREPLACE, exec_type=TRADE)
    c1.wait_report(r, status=PARTIAL, exec_type=REPLACED)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (TRADE, PREPLACE, "1000", "300", "700", "200"),
        (REPLACED, PARTIAL, "1200", "300", "900", "0"),
    ]
    # the new terms work at the venue: a later fill counts against the new quantity
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 900)
    c1.wait_report(r, status=FILLED)
    assert seq(c1, r)[-1] == (TRADE, FILLED, "1200", "1200", "0", "900")


def test_C2_replace_down_to_below_cum_qty_ends_filled(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 600)
    c1.wait_report(cl, status=PARTIAL)
    r = c1.replace(cl, "IBM", "1", 500, price="150.00")
    done = c1.wait_report(r, exec_type=REPLACED)
    assert done[codec.ORIG_CL_ORD_ID] == cl
    assert seq(c1, cl, r)[-2:] == [
        (PREPLACE, PREPLACE, "1000", "600", "400", "0"),
        (REPLACED, FILLED, "600", "600", "0", "0"),  # OrderQty never below CumQty
    ]


def test_D1_chained_requests_use_the_last_accepted_cl_ord_id(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    r1 = c1.replace(cl, "IBM", "1", 800, price="148.00")
    c1.wait_report(r1, exec_type=REPLACED)
    # OrigClOrdID must now be r1: the original ClOrdID is refused
    bad = c1.cancel(cl, "IBM", "1", 800)
    rej = c1.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT and m[codec.CL_ORD_ID] == bad)
    assert "last accepted ClOrdID" in rej[codec.TEXT]
    r2 = c1.replace(r1, "IBM", "1", 700, price="147.50")
    c1.wait_report(r2, exec_type=REPLACED)
    x = c1.cancel(r2, "IBM", "1", 700)
    fin = c1.wait_report(x, status=CANCELED)
    assert fin[codec.ORIG_CL_ORD_ID] == r2
    assert seq(c1, cl, r1, r2, x)[-1] == (CANCELED, CANCELED, "700", "0", "0", "0")


def test_D2_second_request_while_one_is_pending_is_refused(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    with venue.paused():
        x = c1.cancel(cl, "IBM", "1", 1000)
        c1.wait_report(x, status=PCANCEL)
        r = c1.replace(cl, "IBM", "1", 500, price="150.00")
        rej = c1.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT and m[codec.CL_ORD_ID] == r)
    assert (rej[codec.CXL_REJ_REASON], rej[codec.CXL_REJ_RESPONSE_TO], rej[codec.ORD_STATUS]) == ("3", "2", PCANCEL)
    c1.wait_report(x, status=CANCELED)


def test_E1_unsolicited_cancel_by_the_venue(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 250)
    c1.wait_report(cl, status=PARTIAL)
    child = stack.app.engine.orders[c1.reports_for(cl)[0][codec.ORDER_ID]].children  # type: ignore[attr-defined]
    sim(stack).cancel_unsolicited("FIXOMS", next(iter(child)), "trading halted")
    done = c1.wait_report(cl, status=CANCELED)
    assert "trading halted" in done[codec.TEXT]
    assert seq(c1, cl)[-1] == (CANCELED, CANCELED, "1000", "250", "0", "0")


def test_F2_possresend_of_a_known_order_is_not_a_new_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    c1.new_order("IBM", "1", 1000, price="149.00", cl_ord_id=cl, extra=[(codec.POSS_RESEND, "Y")])
    st = c1.wait_report(cl, exec_type=STATUS)
    assert st[codec.ORD_STATUS] == NEW
    assert len(stack.app.engine.orders) == 1  # type: ignore[attr-defined]


def test_G1_status_of_an_unknown_order(stack: Stack) -> None:
    c1 = stack.client()
    c1.status("NOPE", "IBM", "1")
    st = c1.wait_report("NOPE", exec_type=STATUS)
    assert (st[codec.ORD_STATUS], st[codec.ORD_REJ_REASON]) == (REJECTED, "5")


def test_I1_fok_that_cannot_fill_is_canceled(stack: Stack) -> None:
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 5000, price="150.05", tif="4")
    c1.wait_report(cl, status=CANCELED)
    assert seq(c1, cl) == [(NEW, NEW, "5000", "0", "5000", "0"), (CANCELED, CANCELED, "5000", "0", "0", "0")]


def test_I2_ioc_partial_fill_then_remainder_canceled(stack: Stack) -> None:
    c1 = stack.client()
    book = sim(stack).books["IBM"]
    best_px, best_qty = book.best_ask()
    cl = c1.new_order("IBM", "1", best_qty + 50, price=str(Decimal(best_px) / 100), tif="3")
    done = c1.wait_report(cl, status=CANCELED)
    assert done[codec.TEXT] == "IOC remainder canceled"
    total = str(best_qty + 50)
    assert seq(c1, cl) == [
        (NEW, NEW, total, "0", total, "0"),
        (TRADE, PARTIAL, total, str(best_qty), "50", str(best_qty)),
        (CANCELED, CANCELED, total, str(best_qty), "0", "0"),
    ]


def test_J1_trade_cancel_reopens_a_filled_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 1000)
    fill = c1.wait_report(cl, status=FILLED)
    order = stack.app.engine.orders[fill[codec.ORDER_ID]]  # type: ignore[attr-defined]
    venue.bust_last_fill("FIXOMS", next(iter(order.children)))
    bust = c1.wait_report(cl, exec_type=BUST)
    assert bust[codec.EXEC_REF_ID] == fill[codec.EXEC_ID]
    assert seq(c1, cl)[-1] == (BUST, NEW, "1000", "0", "1000", "0")  # a bust executes nothing: LastQty 0
    # the broker works the reopened quantity again
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 1000)
    c1.wait_report(cl, status=FILLED)
    assert seq(c1, cl)[-1] == (TRADE, FILLED, "1000", "1000", "0", "1000")


def test_J2_trade_correct_changes_quantity_and_price(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 400)
    fill = c1.wait_report(cl, status=PARTIAL)
    order = stack.app.engine.orders[fill[codec.ORDER_ID]]  # type: ignore[attr-defined]
    venue.bust_last_fill("FIXOMS", next(iter(order.children)), correct_to=(300, Decimal("148.50")))
    corr = c1.wait_report(cl, exec_type=CORRECT)
    assert (corr[codec.LAST_QTY], corr[codec.LAST_PX], corr[codec.CUM_QTY], corr[codec.AVG_PX]) == (
        "300", "148.5", "300", "148.5")


def test_L1_mass_cancel_and_mass_status(stack: Stack) -> None:
    c1 = stack.client()
    a = rest_ibm(c1, 100, "149.00")
    b = rest_ibm(c1, 200, "148.00")
    s = c1.mass_status("7")
    reports = [c1.wait_for(lambda m: m.get(codec.MASS_STATUS_REQ_ID) == s) for _ in range(2)]
    assert sorted(m[codec.CL_ORD_ID] for m in reports) == sorted([a, b])
    assert [m.get(codec.LAST_RPT_REQUESTED) for m in reports] == [None, "Y"]
    m = c1.mass_cancel("1", "IBM")
    rpt = c1.wait_for(lambda msg: msg[codec.MSG_TYPE] == codec.MASS_CANCEL_REPORT)
    assert (rpt[codec.CL_ORD_ID], rpt[codec.MASS_CANCEL_RESPONSE], rpt[codec.TOTAL_AFFECTED_ORDERS]) == (m, "1", "2")
    for cl in (a, b):
        assert c1.wait_report(cl, status=CANCELED)[codec.TEXT] == f"mass cancel {m}"


def test_stop_order_is_held_until_the_market_trades_through(stack: Stack) -> None:
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 100, ord_type="3", extra=[(codec.STOP_PX, "150.50")])
    c1.wait_report(cl, status=NEW)
    stack.app.engine.submit(c.MarketPrice("IBM", Decimal("150.40")))  # type: ignore[attr-defined]
    c1.drain(0.3)
    assert seq(c1, cl) == [(NEW, NEW, "100", "0", "100", "0")]
    stack.app.engine.submit(c.MarketPrice("IBM", Decimal("150.50")))  # type: ignore[attr-defined]
    c1.wait_report(cl, status=FILLED)


def test_iceberg_shows_only_max_floor_at_the_venue(stack: Stack) -> None:
    c1 = stack.client()
    cl = c1.new_order("IBM", "2", 1000, price="151.00", extra=[(codec.MAX_FLOOR, "100")])
    c1.wait_report(cl, status=NEW)
    c1.drain(0.2)
    depth = sim(stack).books["IBM"].depth(1, 20)
    assert (15100, 100, 1) in depth


def test_day_and_gtd_orders_expire(stack: Stack) -> None:
    c1 = stack.client()
    day = rest_ibm(c1, 100, "149.00")
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y%m%d-%H:%M:%S")
    gtd = c1.new_order("IBM", "1", 100, price="148.00", tif="6", extra=[(codec.EXPIRE_TIME, soon)])
    c1.wait_report(gtd, status=NEW)
    eng = stack.app.engine  # type: ignore[attr-defined]
    eng.submit(c.ExpireOrders("gtd", datetime.now(UTC)))
    c1.drain(0.3)
    assert seq(c1, gtd)[-1][1] == NEW
    eng.submit(c.ExpireOrders("gtd", datetime.now(UTC) + timedelta(seconds=31)))
    c1.wait_report(gtd, status=EXPIRED)
    eng.submit(c.ExpireOrders("day", datetime.now(UTC)))
    c1.wait_report(day, status=EXPIRED)
    assert seq(c1, day)[-1] == (EXPIRED, EXPIRED, "100", "0", "0", "0")
    assert seq(c1, gtd)[-1] == (EXPIRED, EXPIRED, "100", "0", "0", "0")


def test_fix42_replace_and_cancel(stack: Stack) -> None:
    c2 = stack.client("CLIENT2", "FIX.4.2")
    cl = rest_ibm(c2, 500)
    r = c2.replace(cl, "IBM", "1", 400, price="148.50")
    c2.wait_report(r, exec_type=REPLACED)
    x = c2.cancel(r, "IBM", "1", 400)
    c2.wait_report(x, status=CANCELED)
    assert [row[:2] for row in seq(c2, cl, r, x)] == [(NEW, NEW), (PREPLACE, PREPLACE), (REPLACED, NEW),
                                                     (PCANCEL, PCANCEL), (CANCELED, CANCELED)]


def test_scheduled_jobs_expire_day_orders(stack: Stack) -> None:
    c1 = stack.client()
    day = rest_ibm(c1, 100, "149.00")
    jobs = stack.app.jobs  # type: ignore[attr-defined]
    assert {j["id"] for j in jobs.list()} == {"expire_day", "renew_gt", "expire_gtd", "eod_report", "rotate_logs"}
    jobs.run_now("expire_day")  # what the session-end cron trigger runs
    c1.wait_report(day, status=EXPIRED)
    assert seq(c1, day)[-1] == (EXPIRED, EXPIRED, "100", "0", "0", "0")


def test_restart_reconciles_children_with_the_venue(stack: Stack) -> None:
    """While the engine is down the venue fills one child and forgets another: on restart the engine
    asks the venue for every open child, applies the missed fill once and cancels the unknown child
    back to the client with the reason."""
    c1 = stack.client()
    filled = rest_ibm(c1, 300, "150.00")
    lost = rest_ibm(c1, 200, "149.50")
    eng = stack.app.engine  # type: ignore[attr-defined]
    child_of = {cl: next(iter(o.children)) for o in eng.orders.values() for cl in (o.cl_ord_id,)}
    stack.stop_engine()
    venue = sim(stack)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 300)  # fills `filled` while we are away
    with venue.paused():  # the venue loses `lost` (as after a venue-side failover)
        vid = venue.by_cl_ord_id.pop(("FIXOMS", child_of[lost]))
        venue.books["IBM"].cancel(vid)
        del venue.orders[vid]
    stack.start_engine()
    assert c1.app.logon_event.wait(15)
    c1.wait_report(filled, status=FILLED, timeout=15)
    gone = c1.wait_report(lost, status=CANCELED, timeout=15)
    assert "unknown at VENUE-B" in gone[codec.TEXT]
    fills = [m for m in c1.reports_for(filled) if m[codec.EXEC_TYPE] == TRADE]
    assert sum(int(m[codec.LAST_QTY]) for m in fills) == 300  # exactly once, though QuickFIX also resent it


def test_H1_gtc_order_outlives_the_day_and_a_restart(stack: Stack) -> None:
    c1 = stack.client()
    gtc = c1.new_order("IBM", "1", 400, price="150.00", tif="1")
    c1.wait_report(gtc, status=NEW)
    day = rest_ibm(c1, 100, "148.50")
    stack.app.jobs.run_now("expire_day")  # type: ignore[attr-defined]
    c1.wait_report(day, status=EXPIRED)
    stack.stop_engine()  # overnight
    stack.start_engine()
    assert c1.app.logon_event.wait(15)
    c1.status(gtc, "IBM", "1")
    st = c1.wait_report(gtc, exec_type=STATUS)
    assert (st[codec.ORD_STATUS], st[codec.LEAVES_QTY], st[codec.TIF]) == (NEW, "400", "1")
    sim(stack).house_order("IBM", Side.SELL, Decimal("150.00"), 400)  # still working at the venue
    c1.wait_report(gtc, status=FILLED)


def test_K1_trading_halt_refuses_new_orders_and_keeps_working_ones(stack: Stack) -> None:
    import queue as _q

    c1 = stack.client()
    working = rest_ibm(c1, 100, "149.00")
    answers: _q.Queue[object] = _q.Queue()
    eng = stack.app.engine  # type: ignore[attr-defined]
    eng.submit(c.SetTradingState("firm", "HALTED", "ops", "market halt", reply=answers.put))
    assert answers.get(timeout=10)[:2] == ("ACTIVE", "HALTED")  # type: ignore[index]
    refused = c1.new_order("IBM", "1", 100, price="148.00")
    rej = c1.wait_report(refused, status=REJECTED)
    assert rej[codec.ORD_REJ_REASON] == "99"
    assert seq(c1, working)[-1][1] == NEW  # the working order is untouched
    eng.submit(c.SetTradingState("firm", "ACTIVE", "ops", "halt lifted", reply=answers.put))
    answers.get(timeout=10)
    again = c1.new_order("IBM", "1", 100, price="148.00")
    c1.wait_report(again, status=NEW)
