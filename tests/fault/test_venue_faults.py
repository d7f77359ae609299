"""Venue faults: a venue session drops with working children, a venue rejects everything, a venue stops
answering. The promise: every client order ends up either finished for the client (filled, canceled or
rejected, with a reason) or working at a venue that is up - nothing is left working for ever with no
live child (an orphan).

Real parts: the engine in this process (so the test can see its view), two venue simulators behind
QuickFIX acceptors, FIX clients over loopback, SQLite. A venue "drops" when its simulator stops; it
"rejects everything" when it does not list the symbol; it "stops answering" when its application
swallows what it receives while its FIX session stays up (heartbeats still flow).

The engine's answers ([engine] venue_down_grace_s = 3, venue_ack_timeout_s = 2), as docs/performance.md
states them and these tests assert them: a dropped venue's open children are put in doubt after the
grace period and the rest is routed to a venue that is up, or canceled back "VENUE-B down, no other
venue for the rest"; a new order while its only venue is down is refused "no venue available for IBM";
a venue that does not list the symbol: New, then Canceled "VENUE-B: unknown symbol IBM"; a venue that
does not acknowledge is asked for status, then its child is put in doubt and the order canceled back
"no answer from VENUE-B, ..." (the venue gets no new orders until it answers); an unanswered cancel
is asked about too, then refused with an OrderCancelReject "no answer from VENUE-B to the cancel"
(CxlRejReason 2) and the order keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fix_engine import codec
from fix_engine.client import FixClient
from tests.conftest import REFERENCE, Stack, run_stack
from tests.e2e.test_routing import wait_quotes
from venues.simulator import SimulatorServer

NEW, PARTIAL, FILLED, CANCELED, REJECTED, STATUS = "0", "1", "2", "4", "8", "I"
DONE = {FILLED, CANCELED, REJECTED, "C"}
BOTH = {"VENUE-A": ("AAPL", "MSFT", "IBM"), "VENUE-B": ("IBM", "TSLA")}
GRACE = 10.0  # seconds the engine gets to deal with a fault before an order counts as orphaned


def venue(stack: Stack, name: str) -> SimulatorServer:
    return next(s for s in stack.sims if s.app.name == name)


def restart_venue(stack: Stack, name: str, listing: tuple[str, ...]) -> SimulatorServer:
    """The venue comes back on its port with its FIX store (sequence numbers) but an empty book, as a
    venue that canceled everything when the session dropped."""
    old = venue(stack, name)
    stack.sims.remove(old)
    sim = SimulatorServer(name, stack.venue_ports[name], stack.tmp / "venues" / name, seed=9,
                          symbols={s: REFERENCE[s] for s in listing})
    sim.start()
    stack.sims.append(sim)
    return sim


def order_id(client: FixClient, cl: str) -> str:
    return next(m[codec.ORDER_ID] for m in client.reports_for(cl) if m.get(codec.ORDER_ID, "NONE") != "NONE")


def finished(client: FixClient, cl: str) -> dict[int, str] | None:
    """The client's last ExecutionReport for `cl` if it says the order is done."""
    reports = [m for m in client.reports_for(cl) if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT]
    return reports[-1] if reports and reports[-1].get(codec.ORD_STATUS) in DONE else None


def working_at_live_venue(stack: Stack, oid: str) -> list[str]:
    """Children of `oid` open at a venue whose simulator runs (the venue's own view)."""
    out = []
    for sim in stack.sims:
        if sim.acceptor is None:
            continue
        for o in list(sim.app.orders.values()):
            if o.cl_ord_id.startswith(oid + ".") and o.leaves > 0:
                out.append(f"{sim.app.name}:{o.cl_ord_id}")
    return out


def orphans(stack: Stack, client: FixClient, cls: list[str], grace: float = GRACE) -> dict[str, Any]:
    """Orders neither finished for the client nor working at a live venue once `grace` has passed
    (returns as soon as there are none)."""
    deadline = time.monotonic() + grace
    while True:
        left = {cl: client.reports_for(cl)[-1].get(codec.ORD_STATUS) for cl in cls
                if finished(client, cl) is None and not working_at_live_venue(stack, order_id(client, cl))}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Stack]:
    """IBM listed on both venues: an order at a venue that drops could go to the other one."""
    yield from run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}", BOTH)


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Stack]:
    """One market per symbol (IBM on VENUE-B only), as fixoms.toml routes them."""
    yield from run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}")


def resting_bids(client: FixClient, n: int, price: str = "149.00") -> list[str]:
    cls = [client.new_order("IBM", "1", 100 + i, price=price) for i in range(n)]
    for cl in cls:
        client.wait_report(cl, exec_type=NEW, timeout=15)
    return cls


# --- a venue session drops ---------------------------------------------------------------------------
def test_orders_working_at_a_venue_that_drops_are_rerouted_or_canceled(both: Stack) -> None:
    wait_quotes(both, "IBM", {"VENUE-A", "VENUE-B"})
    client = both.client()
    cls = resting_bids(client, 4)

    def at_venue_b() -> bool:
        return any(c.startswith("VENUE-B:") for cl in cls for c in working_at_live_venue(both, order_id(client, cl)))

    # The client's New comes on acceptance, before the venue has the child (the broker-ack model): wait for it
    deadline = time.monotonic() + 10
    while not at_venue_b():
        assert time.monotonic() < deadline, "no child of the four bids working at VENUE-B"
        time.sleep(0.05)
    venue(both, "VENUE-B").stop()
    stranded = orphans(both, client, cls)
    assert not stranded, f"orders with no live child {GRACE}s after VENUE-B dropped: {stranded}"


def test_orders_at_a_dropped_venue_are_resolved_when_it_comes_back(single: Stack) -> None:
    """IBM trades on VENUE-B only: once the grace period has passed the orders are canceled back naming
    the venue (nowhere else to go); when the venue logs on again the engine asks it about the children
    it had put in doubt, and the venue's answer (here 'unknown': it restarted empty) settles them."""
    client = single.client()
    cls = resting_bids(client, 3)
    eng = single.app.engine  # type: ignore[attr-defined]
    venue(single, "VENUE-B").stop()
    deadline = time.monotonic() + 10
    while "VENUE-B" in eng.venues_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "VENUE-B" not in eng.venues_up
    # while it is down, a new IBM order has nowhere to go: refused with a reason, not left hanging
    refused = client.new_order("IBM", "1", 77, price="149.00")
    answer = client.wait_report(refused, timeout=10)
    assert (answer[codec.ORD_STATUS], answer[codec.TEXT]) == (REJECTED, "no venue available for IBM"), answer
    # the grace period passes with the venue still down: the orders are canceled back naming it (the venue
    # comes back only then: sooner, reconciliation would settle the children instead)
    for cl in cls:
        done = client.wait_report(cl, status=CANCELED, timeout=20)
        assert done[codec.TEXT] == "VENUE-B down, no other venue for the rest", done
    assert any(ch.in_doubt for o in list(eng.orders.values()) for ch in o.children.values())
    restart_venue(single, "VENUE-B", ("IBM", "TSLA"))
    assert not orphans(single, client, cls, grace=0)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(ch.in_doubt for o in list(eng.orders.values())
                                              for ch in o.children.values()):
        time.sleep(0.1)
    left = [ch.child_id for o in list(eng.orders.values()) for ch in o.children.values() if ch.in_doubt]
    assert not left, f"children still in doubt after VENUE-B came back: {left}"


# --- a venue rejects everything ----------------------------------------------------------------------
def test_a_venue_that_rejects_everything(tmp_path: Path) -> None:
    """VENUE-B does not list IBM (its operator forgot, or halted it): every child is rejected. The client
    sees its order acknowledged, then canceled with the venue's reason; nothing keeps working."""
    gen = run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}", {"VENUE-A": ("AAPL", "MSFT"),
                                                                       "VENUE-B": ("TSLA",)})
    stack = next(gen)
    try:
        client = stack.client()
        cls = [client.new_order("IBM", side, 100 + i, price=px)
               for i, (side, px) in enumerate([("1", "149.00"), ("2", "151.00"), ("1", "150.50")])]
        for cl in cls:
            done = client.wait_for(lambda m, cl=cl: m.get(codec.CL_ORD_ID) == cl
                                   and m.get(codec.ORD_STATUS) in DONE, timeout=15)
            flow = [(m[codec.EXEC_TYPE], m[codec.ORD_STATUS]) for m in client.reports_for(cl)
                    if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT]
            assert flow == [(NEW, NEW), (CANCELED, CANCELED)], (cl, flow)
            assert done[codec.TEXT] == "VENUE-B: unknown symbol IBM", done
            assert Decimal(done[codec.CUM_QTY]) == 0
        assert not orphans(stack, client, cls, grace=0)
        eng = stack.app.engine  # type: ignore[attr-defined]
        assert all(o.is_terminal for o in eng.orders.values() if o.symbol == "IBM")
    finally:
        next(gen, None)


# --- a venue stops answering -------------------------------------------------------------------------
def silence(sim: SimulatorServer) -> list[dict[int, str]]:
    """The venue's application swallows everything; its FIX session stays up (QuickFIX still heartbeats).
    Returns the list of what it swallows (parsed), in order."""
    swallowed: list[dict[int, str]] = []
    sim.app._dispatch = lambda raw, sid: swallowed.append(codec.parse(raw))  # type: ignore[method-assign]
    return swallowed


def wait_swallowed(swallowed: list[dict[int, str]], msg_type: str, cl_ord_id: str, timeout: float = GRACE) -> None:
    """Wait until the silent venue got `msg_type` with ClOrdID `cl_ord_id`."""
    deadline = time.monotonic() + timeout
    while not any(m.get(codec.MSG_TYPE) == msg_type and m.get(codec.CL_ORD_ID) == cl_ord_id for m in swallowed):
        assert time.monotonic() < deadline, f"the venue never got {msg_type} {cl_ord_id}: {swallowed}"
        time.sleep(0.05)


def still_working(client: FixClient, cl: str) -> None:
    """The order is working and nothing ended it: the answer to a status request (after everything the
    engine sent before it) says New, and no report before it said otherwise."""
    client.status(cl, "IBM", "1")
    status = client.wait_report(cl, exec_type=STATUS, timeout=10)
    assert (status[codec.ORD_STATUS], status[codec.LEAVES_QTY]) == (NEW, "100"), status
    ended = [m for m in client.reports_for(cl) if m.get(codec.ORD_STATUS) in DONE]
    assert not ended, ended


def speak(sim: SimulatorServer) -> None:
    del sim.app._dispatch


def test_an_order_the_venue_never_acknowledges_is_resolved(single: Stack) -> None:
    """The child is never acknowledged: the venue is asked for its status, then (IBM trades at VENUE-B
    only) the order is canceled back naming the silent venue."""
    client = single.client()
    swallowed = silence(venue(single, "VENUE-B"))
    try:
        cl = client.new_order("IBM", "1", 100, price="149.00")
        oid = client.wait_report(cl, exec_type=NEW, timeout=10)[codec.ORDER_ID]
        done = client.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.ORD_STATUS) in DONE,
                               timeout=GRACE)
        assert (done[codec.EXEC_TYPE], done[codec.ORD_STATUS], done[codec.TEXT]) == (
            CANCELED, CANCELED, "no answer from VENUE-B, no other venue for the rest"), done
        child = f"{oid}.1"
        assert [m[codec.MSG_TYPE] for m in swallowed if m.get(codec.CL_ORD_ID) == child][:2] == [
            codec.NEW_ORDER_SINGLE, codec.STATUS_REQUEST], swallowed  # asked before giving up
        assert not orphans(single, client, [cl], grace=0)
    finally:
        speak(venue(single, "VENUE-B"))


def test_a_cancel_the_venue_never_answers_is_refused_naming_the_venue(single: Stack) -> None:
    """docs/performance.md: OrderCancelReject "no answer from VENUE-B to the cancel" (CxlRejReason 2)
    after a status request; the order is not canceled and keeps working."""
    client = single.client()
    (cl,) = resting_bids(client, 1)
    oid = order_id(client, cl)
    child = f"{oid}.1"
    deadline = time.monotonic() + 10  # the broker acks before the venue has the child: wait for the venue
    while not working_at_live_venue(single, oid):
        assert time.monotonic() < deadline, f"{child} never reached VENUE-B"
        time.sleep(0.05)
    swallowed = silence(venue(single, "VENUE-B"))
    try:
        x = client.cancel(cl, "IBM", "1", 100)
        client.wait_report(x, status="6", timeout=10)  # PendingCancel
        answer = client.wait_for(lambda m: m.get(codec.CL_ORD_ID) == x and (
            m.get(codec.MSG_TYPE) == codec.CANCEL_REJECT or m.get(codec.ORD_STATUS) in DONE), timeout=GRACE)
        assert answer[codec.MSG_TYPE] == codec.CANCEL_REJECT, f"cancel {x} was not refused: {answer}"
        assert (answer[codec.ORDER_ID], answer[codec.ORIG_CL_ORD_ID], answer[codec.ORD_STATUS],
                answer[codec.CXL_REJ_RESPONSE_TO], answer[codec.CXL_REJ_REASON], answer[codec.TEXT]) == (
            oid, cl, NEW, "1", "2", "no answer from VENUE-B to the cancel"), answer
        # it asked before refusing: the venue got the cancel of the child, then a status request for it
        wait_swallowed(swallowed, codec.STATUS_REQUEST, child)
        kinds = [(m[codec.MSG_TYPE], m.get(codec.ORIG_CL_ORD_ID, m.get(codec.CL_ORD_ID))) for m in swallowed]
        assert kinds[:2] == [(codec.CANCEL_REQUEST, child), (codec.STATUS_REQUEST, child)], kinds
        still_working(client, cl)
    finally:
        speak(venue(single, "VENUE-B"))


def test_a_silent_venue_does_not_hold_up_other_venues_or_sessions(single: Stack) -> None:
    """While VENUE-B swallows everything, VENUE-A's orders and another client's fill as usual."""
    c1 = single.client()
    c2 = single.client("CLIENT2", "FIX.4.2")
    silence(venue(single, "VENUE-B"))
    try:
        stuck = c1.new_order("IBM", "1", 100, price="149.00")
        c1.wait_report(stuck, exec_type=NEW, timeout=10)
        for i in range(3):
            cl = c2.new_order("AAPL", "1", 100, price=f"{191 + i / 100:.2f}")
            c2.wait_report(cl, status=FILLED, timeout=15)
            cl = c1.new_order("MSFT", "2", 100, price=f"{409 - i / 100:.2f}")
            c1.wait_report(cl, status=FILLED, timeout=15)
    finally:
        speak(venue(single, "VENUE-B"))
