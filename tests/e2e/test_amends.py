"""Issue 16 item 1: a client's replace reaches the venue as a replace (35=G) where the working child can
carry it, over real client and venue sessions. Each test asserts the exact sequence the client receives -
(ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty) - and what the venue received and sent by
MsgType (VenueSimulator.exchanged), for the Appendix D sequence it is named after (quantities / 10).
Races (a fill crossing the replace) are made to happen by pausing the venue simulator. SQLite only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from fix_engine import codec
from oms.enums import Side
from tests.conftest import Stack, run_stack
from tests.e2e.scenario import (
    CANCELED,
    FILLED,
    NEW,
    PARTIAL,
    PREPLACE,
    REPLACED,
    STATUS,
    TRADE,
    rest_ibm,
    seq,
    settled,
    sim,
    venue_seq,
)

CANCEL = "F"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


def sell(stack: Stack, qty: int, price: str = "150.00") -> None:
    """Another participant's sell at the venue: it trades with our resting bid at 150.00."""
    sim(stack).house_order("IBM", Side.SELL, Decimal(price), qty)


def cancel_reject(client, cl_ord_id: str):  # type: ignore[no-untyped-def]
    return client.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT and m[codec.CL_ORD_ID] == cl_ord_id)


def test_C1b_quantity_up_amended_at_the_venue_with_a_fill_crossing_it(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    with sim(stack).paused():
        r = c1.replace(cl, "IBM", "1", 1200, price="150.00")
        c1.wait_report(r, status=PREPLACE)
        sell(stack, 200)  # reaches us before the venue takes the replace
        c1.wait_report(cl, status=PREPLACE, exec_type=TRADE)
    c1.wait_report(r, exec_type=REPLACED)
    sell(stack, 900)  # the amended order works the new quantity
    c1.wait_report(r, status=FILLED)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (TRADE, PREPLACE, "1000", "300", "700", "200"),
        (REPLACED, PARTIAL, "1200", "300", "900", "0"),
        (TRADE, FILLED, "1200", "1200", "0", "900"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "100", "900", "100"),
        ("out", "8", TRADE, PARTIAL, "1000", "300", "700", "200"),
        ("in", "G", "", "", "1200", "", "", ""),
        ("out", "8", REPLACED, PARTIAL, "1200", "300", "900", "0"),
        ("out", "8", TRADE, FILLED, "1200", "1200", "0", "900"),
    ])


def test_C2a_price_amend_refused_as_too_late_when_a_fill_completes_the_order(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    with sim(stack).paused():
        r = c1.replace(cl, "IBM", "1", 1000, price="149.95")  # the limit only
        c1.wait_report(r, status=PREPLACE)
        sell(stack, 900)
        c1.wait_report(cl, status=PREPLACE, exec_type=TRADE)
    rej = cancel_reject(c1, r)
    assert (rej[codec.ORIG_CL_ORD_ID], rej[codec.ORD_STATUS], rej[codec.CXL_REJ_REASON],
            rej[codec.CXL_REJ_RESPONSE_TO]) == (cl, FILLED, "0", "2")
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (TRADE, PREPLACE, "1000", "1000", "0", "900"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "100", "900", "100"),
        ("out", "8", TRADE, FILLED, "1000", "1000", "0", "900"),
        ("in", "G", "", "", "1000", "", "", ""),
        ("out", "9", "", FILLED, "", "", "", ""),  # the venue's too late: nothing more reaches the client
    ])
    assert [m[codec.CL_ORD_ID] for m in c1.received if m[codec.MSG_TYPE] == codec.CANCEL_REJECT] == [r]


@pytest.mark.parametrize("filled,new_qty", [(700, 700), (800, 700)], ids=["C3b_equal", "C3c_below"])
def test_C3bc_replace_down_crossing_a_fill_up_to_or_beyond_it_ends_filled_at_cum_qty(
        stack: Stack, filled: int, new_qty: int) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    order_id = c1.reports_for(cl)[0][codec.ORDER_ID]
    with sim(stack).paused():
        r = c1.replace(cl, "IBM", "1", new_qty, price="150.00")
        c1.wait_report(r, status=PREPLACE)
        sell(stack, filled)
        c1.wait_report(cl, status=PREPLACE, exec_type=TRADE)
    c1.wait_report(r, exec_type=REPLACED)
    f, rest = str(filled), str(1000 - filled)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (PREPLACE, PREPLACE, "1000", "0", "1000", "0"),
        (TRADE, PREPLACE, "1000", f, rest, f),
        (REPLACED, FILLED, f, f, "0", "0"),  # OrderQty amended to CumQty, never below it
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", f, rest, f),
        ("in", "G", "", "", str(new_qty), "", "", ""),
        ("out", "8", REPLACED, FILLED, f, f, "0", "0"),
    ])


def test_D1b_a_replace_refused_before_pending_then_another_amended_at_the_venue(stack: Stack) -> None:
    """The broker refuses the first replace itself (risk: max order quantity 100,000), so it never becomes
    pending and never reaches the venue; the next one names the last accepted ClOrdID and is amended."""
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    y = c1.replace(cl, "IBM", "1", 200000, price="150.00")
    rej = cancel_reject(c1, y)
    assert (rej[codec.ORIG_CL_ORD_ID], rej[codec.ORD_STATUS], rej[codec.CXL_REJ_RESPONSE_TO]) == (cl, PARTIAL, "2")
    sell(stack, 50)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.CUM_QTY) == "150")
    sell(stack, 200)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.CUM_QTY) == "350")
    z = c1.replace(cl, "IBM", "1", 600, price="150.00")  # OrigClOrdID: the last non-rejected, cl
    c1.wait_report(z, exec_type=REPLACED)
    sell(stack, 150)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == z and m.get(codec.CUM_QTY) == "500")
    assert seq(c1, cl, y, z) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (TRADE, PARTIAL, "1000", "150", "850", "50"),
        (TRADE, PARTIAL, "1000", "350", "650", "200"),
        (PREPLACE, PREPLACE, "1000", "350", "650", "0"),
        (REPLACED, PARTIAL, "600", "350", "250", "0"),
        (TRADE, PARTIAL, "600", "500", "100", "150"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "100", "900", "100"),
        ("out", "8", TRADE, PARTIAL, "1000", "150", "850", "50"),
        ("out", "8", TRADE, PARTIAL, "1000", "350", "650", "200"),
        ("in", "G", "", "", "600", "", "", ""),
        ("out", "8", REPLACED, PARTIAL, "600", "350", "250", "0"),
        ("out", "8", TRADE, PARTIAL, "600", "500", "100", "150"),
    ])


def wait_engine(stack: Stack, check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "engine did not get there"
        time.sleep(0.01)


def test_D1c_the_venue_refuses_the_amend_after_pending_then_another_is_amended(stack: Stack) -> None:
    """The venue refuses the replace (35=9: it takes only cancels while IBM is halted); the client gets
    OrderCancelReject and the order works on unchanged, a fill crossing the refusal included."""
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    venue = sim(stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    with venue.paused():
        y = c1.replace(cl, "IBM", "1", 800, price="150.00")
        c1.wait_report(y, status=PREPLACE)
        sell(stack, 50)
        c1.wait_report(cl, status=PREPLACE, exec_type=TRADE)
        venue.halt("IBM", True, "news pending")
    rej = cancel_reject(c1, y)
    assert (rej[codec.ORIG_CL_ORD_ID], rej[codec.ORD_STATUS], rej[codec.CXL_REJ_REASON],
            rej[codec.CXL_REJ_RESPONSE_TO]) == (cl, PARTIAL, "2", "2")
    assert rej[codec.TEXT] == "VENUE-B refused replace: trading halted in IBM: only cancels accepted"
    venue.halt("IBM", False)
    wait_engine(stack, lambda: not stack.app.engine.halted_at.get("IBM"))  # type: ignore[attr-defined]
    sell(stack, 200)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.CUM_QTY) == "350")
    z = c1.replace(cl, "IBM", "1", 600, price="150.00")
    c1.wait_report(z, exec_type=REPLACED)
    sell(stack, 150)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == z and m.get(codec.CUM_QTY) == "500")
    assert seq(c1, cl, y, z) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (TRADE, PREPLACE, "1000", "150", "850", "50"),
        (TRADE, PARTIAL, "1000", "350", "650", "200"),
        (PREPLACE, PREPLACE, "1000", "350", "650", "0"),
        (REPLACED, PARTIAL, "600", "350", "250", "0"),
        (TRADE, PARTIAL, "600", "500", "100", "150"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "100", "900", "100"),
        ("out", "8", TRADE, PARTIAL, "1000", "150", "850", "50"),
        ("in", "G", "", "", "800", "", "", ""),
        ("out", "9", "", PARTIAL, "", "", "", ""),
        ("out", "8", TRADE, PARTIAL, "1000", "350", "650", "200"),
        ("in", "G", "", "", "600", "", "", ""),
        ("out", "8", REPLACED, PARTIAL, "600", "350", "250", "0"),
        ("out", "8", TRADE, PARTIAL, "600", "500", "100", "150"),
    ])


def test_D2c_a_second_replace_while_the_first_is_pending_at_the_venue_is_refused(stack: Stack) -> None:
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    with sim(stack).paused():
        y = c1.replace(cl, "IBM", "1", 800, price="150.00")
        z = c1.replace(y, "IBM", "1", 700, price="150.00")
        rej = cancel_reject(c1, z)
    assert (rej[codec.CXL_REJ_REASON], rej[codec.CXL_REJ_RESPONSE_TO], rej[codec.ORD_STATUS]) == ("3", "2", PREPLACE)
    c1.wait_report(y, exec_type=REPLACED)
    sell(stack, 200)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == y and m.get(codec.CUM_QTY) == "300")
    assert seq(c1, cl, y, z) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (REPLACED, PARTIAL, "800", "100", "700", "0"),
        (TRADE, PARTIAL, "800", "300", "500", "200"),
    ]
    settled(lambda: venue_seq(stack, order_id), [
        ("in", "D", "", "", "1000", "", "", ""),
        ("out", "8", NEW, NEW, "1000", "0", "1000", "0"),
        ("out", "8", TRADE, PARTIAL, "1000", "100", "900", "100"),
        ("in", "G", "", "", "800", "", "", ""),  # only the first replace reaches the venue
        ("out", "8", REPLACED, PARTIAL, "800", "100", "700", "0"),
        ("out", "8", TRADE, PARTIAL, "800", "300", "500", "200"),
    ])


@pytest.fixture
def patient_stack(tmp_path: Path, db_url: str) -> Iterator[Stack]:
    """The venue's answers are awaited 30 s: a stop that waits on a paused venue gives up on nothing."""
    yield from run_stack(tmp_path, db_url, overrides={"venue_ack_timeout_s": 30.0})


def test_restart_with_an_amend_pending_at_the_venue_applies_the_venues_answer_after(patient_stack: Stack) -> None:
    """The engine stops after sending the amend and before the venue answers; the venue's Replaced,
    sent while the engine was away (QuickFIX resends it at the next logon), still completes the
    client's replace after the restart."""
    stack = patient_stack
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    sell(stack, 100)
    order_id = c1.wait_report(cl, status=PARTIAL)[codec.ORDER_ID]
    venue = sim(stack)
    with venue.paused():
        r = c1.replace(cl, "IBM", "1", 600, price="150.00")
        c1.wait_report(r, status=PREPLACE)
        (child,) = stack.app.engine.orders[order_id].children.values()  # type: ignore[attr-defined]
        wait_engine(stack, lambda: bool(child.amend_id))
        stack.stop_engine()
    wait_engine(stack, lambda: venue_seq_len(venue, child.child_id) >= 5)  # the venue amended meanwhile
    stack.start_engine()
    assert c1.app.logon_event.wait(15)
    c1.wait_report(r, exec_type=REPLACED, timeout=20)
    sell(stack, 100)
    c1.wait_for(lambda m: m.get(codec.CL_ORD_ID) == r and m.get(codec.CUM_QTY) == "200", timeout=15)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (TRADE, PARTIAL, "1000", "100", "900", "100"),
        (PREPLACE, PREPLACE, "1000", "100", "900", "0"),
        (REPLACED, PARTIAL, "600", "100", "500", "0"),
        (TRADE, PARTIAL, "600", "200", "400", "100"),
    ]
    settled(lambda: venue_seq(stack, order_id)[3:], [
        ("in", "G", "", "", "600", "", "", ""),
        ("out", "8", REPLACED, PARTIAL, "600", "100", "500", "0"),
        ("in", "H", "", "", "", "", "", ""),  # the restart's reconciliation, by the amended ClOrdID
        ("out", "8", STATUS, PARTIAL, "600", "100", "500", "0"),
        ("out", "8", TRADE, PARTIAL, "600", "200", "400", "100"),
    ])


def venue_seq_len(venue, child_id: str) -> int:  # type: ignore[no-untyped-def]
    return len(venue.exchanged(child_id))


@pytest.fixture
def no_amend_stack(tmp_path: Path, db_url: str) -> Iterator[Stack]:
    yield from run_stack(tmp_path, db_url, venue_profiles={"VENUE-B": {"amend": False}})


def test_a_venue_configured_without_amend_gets_cancel_and_reroute(no_amend_stack: Stack) -> None:
    stack = no_amend_stack
    c1 = stack.client()
    cl = rest_ibm(c1, 1000, stack=stack)
    order_id = c1.reports_for(cl)[0][codec.ORDER_ID]
    r = c1.replace(cl, "IBM", "1", 800, price="150.00")
    c1.wait_report(r, exec_type=REPLACED)
    assert seq(c1, cl, r) == [
        (NEW, NEW, "1000", "0", "1000", "0"),
        (PREPLACE, PREPLACE, "1000", "0", "1000", "0"),
        (REPLACED, NEW, "800", "0", "800", "0"),
    ]
    settled(lambda: [row[:4] for row in venue_seq(stack, order_id)], [
        ("in", "D", "", ""), ("out", "8", NEW, NEW),
        ("in", CANCEL, "", ""), ("out", "8", CANCELED, CANCELED),
        ("in", "D", "", ""), ("out", "8", NEW, NEW),
    ])
