"""What the order-lifecycle scenario tests share (tests/e2e: test_lifecycle, test_appendix_d, test_amends,
test_expiry, test_stops): FIX status values, the sequence of reports a client saw about an order, the
venue's side of the conversation, and a resting IBM bid to start from."""

from __future__ import annotations

import time
from collections.abc import Callable

from fix_engine import codec
from fix_engine.client import FixClient, Msg
from tests.conftest import Stack

# ExecType / OrdStatus values
NEW, PARTIAL, FILLED, DFD, CANCELED, REPLACED, PCANCEL = "0", "1", "2", "3", "4", "5", "6"
REJECTED, EXPIRED, PREPLACE, TRADE, BUST, CORRECT, STATUS = "8", "C", "E", "F", "H", "G", "I"


Row = tuple[str, str, str, str, str, str]


def seq(client: FixClient, *cl_ord_ids: str, settle: float | None = None) -> list[Row]:
    """(ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty) of every ER about these ClOrdIDs that
    the engine sent before it answered a status request sent now (the answer itself left out): it comes
    after everything the engine decided before it, on the same session, so nothing is still on its way.
    `settle` (seconds, 0 too): no status request, only what came within that time (the engine is stopped)."""
    marker: Msg | None = None
    if settle is None:
        client.status(cl_ord_ids[0], "IBM", "1")
        marker = client.wait_for(lambda m: m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT
                                 and m.get(codec.CL_ORD_ID) == cl_ord_ids[0]
                                 and (m.get(codec.EXEC_TYPE) == STATUS or m.get(codec.EXEC_TRANS_TYPE) == "3"),
                                 timeout=10)  # ExecType I (FIX 4.4), ExecTransType 3 (FIX 4.2)
    else:
        client.drain(settle)
    ids = set(cl_ord_ids)
    return [
        (m[codec.EXEC_TYPE], m[codec.ORD_STATUS], m.get(codec.ORDER_QTY, ""), m[codec.CUM_QTY],
         m[codec.LEAVES_QTY], m.get(codec.LAST_QTY, "0"))
        for m in client.received
        if m[codec.MSG_TYPE] == codec.EXECUTION_REPORT and m is not marker
        and (m.get(codec.CL_ORD_ID) in ids or m.get(codec.ORIG_CL_ORD_ID) in ids)
    ]


def cancel_rejects(client: FixClient) -> list[Msg]:
    client.drain(0.1)
    return [m for m in client.received if m[codec.MSG_TYPE] == codec.CANCEL_REJECT]


def sim(stack: Stack, name: str = "VENUE-B"):  # type: ignore[no-untyped-def]
    return stack.venue(name)


# IBM is routed to VENUE-B, reference 150.00: house bids 149.99.., asks 150.01.., so a client bid at
# 150.00 is the best bid and a house sell at 150.00 trades with it alone.
def rest_ibm(client: FixClient, qty: int = 1000, price: str = "150.00", side: str = "1",
             stack: Stack | None = None) -> str:
    cl = client.new_order("IBM", side, qty, price=price)
    ack = client.wait_report(cl, status=NEW)
    if stack is not None:
        wait_at_venue(stack, ack[codec.ORDER_ID])
    return cl


def wait_at_venue(stack: Stack, order_id: str, timeout: float = 10.0) -> None:
    """The broker acks before the venue has the child: wait until the venue acknowledged it too,
    so pausing the venue cannot catch the child order itself in flight."""
    from oms.enums import OrdStatus

    order = stack.app.engine.orders[order_id]  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if order.children and all(ch.status is not OrdStatus.PENDING_NEW for ch in order.children.values()):
            return
        time.sleep(0.01)
    raise TimeoutError(f"venue did not acknowledge {order_id}")


VenueRow = tuple[str, str, str, str, str, str, str, str]


def venue_seq(stack: Stack, order_id: str, venue: str = "VENUE-B") -> list[VenueRow]:
    """(in/out, MsgType, ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty) of every application
    message the venue received or sent about the order's children ("" where the message has no such
    field), oldest first."""
    sim_ = stack.venue(venue)
    ids = set(stack.app.engine.orders[order_id].children)  # type: ignore[attr-defined]
    while True:  # an amend renames the venue's order: follow ClOrdID -> OrigClOrdID chains
        messages = sim_.exchanged(*ids)
        more = ids | {m[codec.CL_ORD_ID] for _, m in messages if codec.CL_ORD_ID in m}
        if more == ids:
            break
        ids = more
    return [
        (direction, m[codec.MSG_TYPE], m.get(codec.EXEC_TYPE, ""), m.get(codec.ORD_STATUS, ""),
         m.get(codec.ORDER_QTY, ""), m.get(codec.CUM_QTY, ""), m.get(codec.LEAVES_QTY, ""), m.get(codec.LAST_QTY, ""))
        for direction, m in messages
    ]


def settled(read: Callable[[], object], expected: object, timeout: float = 10.0) -> None:
    """Assert that `read()` comes to equal `expected`: the client's answer can overtake the venue's side
    of the conversation (the engine sends the venue its next order in the batch that answers the client,
    and the venue records it a moment later), so the venue's messages are polled, not read once. A
    message too many or too few still fails, after `timeout`."""
    deadline = time.monotonic() + timeout
    got = read()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        got = read()
    assert got == expected


def child_of(stack: Stack, order_id: str) -> str:
    (child,) = stack.app.engine.orders[order_id].children  # type: ignore[attr-defined]
    return str(child)
