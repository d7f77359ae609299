"""The FIX edge with the guarded QuickFIX (native/quickfix/guard.patch): business messages, logons and
logouts reach the engine thread through the sessions' inboxes, in order, and QuickFIX logs them in C++;
no Python runs on a QuickFIX thread for them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fix_engine import codec
from fix_engine.inbox import Inbox, session_event
from fix_engine.logs import message_file, tail
from fix_engine.settings import quickfix_native_edge, quickfix_outbox
from oms import commands as c
from tests.conftest import Stack, run_stack

NEW, CANCELED = "0", "4"

pytestmark = pytest.mark.skipif(not quickfix_native_edge(),
                                reason="needs the guarded QuickFIX build (`make install`): plain QuickFIX has no inbox")


@pytest.fixture(scope="module")
def estack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("edge")
    yield from run_stack(tmp, f"sqlite:///{tmp / 'journal.db'}")


def _wait(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_business_messages_never_call_python_on_quickfix_threads(estack: Stack) -> None:
    app = estack.app
    gateway, venues = app.gateway, app.venue_app  # type: ignore[attr-defined]
    assert gateway.fix_inbox is not None and venues.fix_inbox is not None
    client = estack.client()
    cl = client.new_order("IBM", "1", 100, ord_type="2", price="140.00", account="ACC-EDGE")
    client.wait_report(cl, status=NEW)
    x = client.cancel(cl, "IBM", "1", 100)
    client.wait_report(x, status=CANCELED)
    # Every message came through the inboxes: QuickFIX called no fromApp, on either side.
    assert gateway.callback_deliveries == 0 and venues.callback_deliveries == 0
    # and the sessions' C++ FileLog has both ways of the conversation
    path = message_file(Path(app.client_logs.path), "FIX.4.4", "FIXOMS", "CLIENT1")  # type: ignore[attr-defined]
    logged, _ = tail(path, "FIXOMS", limit=0)
    mine = {(m.direction, m.msg_type) for m in logged if f"{codec.SOH}11={cl}{codec.SOH}" in m.raw}
    assert mine == {("in", "D"), ("out", "8")}


def test_an_order_sent_just_before_a_logout_is_decided_before_the_logout(estack: Stack) -> None:
    """CLIENT2 has cancel-on-disconnect: its logout must come to the engine after the order that preceded
    it on the wire, or the order would be accepted after its session's orders were canceled and stay
    working with nobody logged on. The engine thread is held while both arrive, so that it finds them
    queued together."""
    eng = estack.app.engine  # type: ignore[attr-defined]
    gateway = estack.app.gateway  # type: ignore[attr-defined]
    c2 = estack.client("CLIENT2", "FIX.4.2")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(10)

    eng.submit(c.EngineCall(hold, lambda _result: None))
    assert held.wait(10)
    try:
        cl = c2.new_order("IBM", "1", 100, ord_type="2", price="139.00", account="ACC-2")
        c2.stop()  # Logout right behind the NewOrderSingle, on the same connection
        estack.clients.remove(c2)
        _wait(lambda: "CLIENT2" not in gateway.logged_on, "CLIENT2's logout not seen by QuickFIX")
    finally:
        release.set()

    def decided() -> bool:
        order_id = eng.by_cl_ord_id.get(("CLIENT2", cl))
        return order_id is not None and eng.orders[order_id].is_terminal

    _wait(decided, f"order {cl} not accepted and then canceled by the disconnect")
    order = eng.orders[eng.by_cl_ord_id[("CLIENT2", cl)]]
    assert order.ord_status.value == CANCELED


def test_operator_sees_the_last_messages_from_the_native_log(estack: Stack) -> None:
    from fix_engine.settings import sessions

    app = estack.app
    client = estack.client() if not estack.clients else estack.clients[0]
    cl = client.new_order("IBM", "1", 100, ord_type="2", price="138.00", account="ACC-EDGE")
    client.wait_report(cl, status=NEW)
    ops = app.admin.session_ops  # type: ignore[attr-defined]
    info = next(s for s in sessions(app.settings) if s.key == "CLIENT1")  # type: ignore[attr-defined]
    recent = ops.recent(info, 10)
    assert any(f"|11={cl}|" in m["message"] and m["direction"] == "in" for m in recent)
    times = ops.last_times(info)
    assert times["last_in"] is not None and times["last_out"] is not None


@pytest.mark.skipif(not quickfix_outbox(), reason="needs the fourth guarded QuickFIX build (AppOutboxFd)")
def test_the_engine_threads_messages_are_sent_by_the_sessions_outboxes_in_order(estack: Stack) -> None:
    """The engine thread hands each batch's messages to the sessions' own threads (fix_engine.outbox): the
    client gets its reports, in the order they were decided, the venue its orders and cancels, and each
    outbox has been told that everything handed to it was sent."""
    app = estack.app
    gateway, venues = app.gateway, app.venue_app  # type: ignore[attr-defined]
    box = gateway.outboxes["CLIENT1"]
    venue_boxes = [venues.outboxes[name] for name in venues.outboxes]
    before, venue_before = box.posted, sum(b.posted for b in venue_boxes)
    client = estack.client() if not estack.clients else estack.clients[0]
    placed = [client.new_order("IBM", "1", 100, ord_type="2", price=f"140.{i}0", account="ACC-EDGE") for i in range(5)]
    for cl in placed:
        client.wait_report(cl, status=NEW)
    canceled = [client.cancel(cl, "IBM", "1", 100) for cl in placed]
    for x in canceled:
        client.wait_report(x, status=CANCELED)
    client.drain()
    mine = [m for m in client.received if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT
            and m.get(codec.CL_ORD_ID) in set(placed) | set(canceled) and m.get(codec.EXEC_TYPE) in (NEW, CANCELED)]
    # in the order they were decided: the News as the orders were sent, then the cancels' (each after its
    # Pending Cancel)
    assert [m.get(codec.CL_ORD_ID) for m in mine] == placed + canceled
    _wait(lambda: not box.pending() and not any(b.pending() for b in venue_boxes), "outboxes never said all was sent")
    assert box.posted - before >= 10 and box.sent == box.posted
    assert sum(b.posted for b in venue_boxes) - venue_before >= 10  # a child and its cancel per order
    assert gateway.callback_deliveries == 0


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


def test_inbox_frames_arrive_whole_however_the_bytes_are_split() -> None:
    inbox = Inbox()
    try:
        writer = socket.socket(fileno=socket.dup(inbox.writer_fd))
        first = b"8=FIX.4.4\x019=5\x0135=D\x0149=CLIENT1\x0111=a\x0110=000\x01"
        second = b"!logout\x01CLIENT1"
        data = _frame(first) + _frame(second)
        writer.sendall(data[:3])
        assert inbox.read() == []
        writer.sendall(data[3:len(first) + 6])
        assert inbox.read() == [first.decode()]
        writer.sendall(data[len(first) + 6:])
        frames = inbox.read()
        assert frames == [second.decode()]
        assert session_event(frames[0]) == ("!logout", "CLIENT1")
        assert session_event(first.decode()) is None
        writer.close()
    finally:
        inbox.close()
