"""Pre-trade risk and access control over real FIX sessions.

Each risk check is shown at, just below and just above its limit, with the OrdRejReason and a Text
naming the limit. The checks share one running stack (SQLite) and each uses its own account, so a
limit set for one test cannot leak into another; firm-wide settings are put back after use.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from fix_engine import codec
from fix_engine.client import FixClient
from fix_engine.quickfix_import import fix
from oms import commands as c
from tests.conftest import Stack, run_stack

NEW, FILLED, CANCELED, REJECTED = "0", "2", "4", "8"


@pytest.fixture(scope="module")
def rstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("risk")
    yield from run_stack(tmp, f"sqlite:///{tmp / 'journal.db'}")


@pytest.fixture(scope="module")
def client(rstack: Stack) -> FixClient:
    return rstack.client()


def operator(stack: Stack, command_type: type, *args: object, **kw: object) -> object:
    """Send an operator command to the engine and wait for its answer (as the admin socket does)."""
    answers: queue.Queue[object] = queue.Queue()
    stack.app.engine.submit(command_type(*args, **kw, reply=answers.put))  # type: ignore[attr-defined]
    answer = answers.get(timeout=10)
    assert not isinstance(answer, str), answer
    return answer


def limit(stack: Stack, account: str, name: str, value: str) -> None:
    operator(stack, c.SetRiskLimit, account, name, value, "tester")


def order(client: FixClient, account: str, qty: int | str, price: str | None = "150.00", side: str = "2",
          symbol: str = "IBM", ord_type: str = "2") -> dict[int, str]:
    cl = client.new_order(symbol, side, qty, ord_type=ord_type, price=price, account=account)
    return client.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.EXEC_TYPE) in (NEW, REJECTED))


def accepted(msg: dict[int, str]) -> None:
    assert msg[codec.EXEC_TYPE] == NEW, msg.get(codec.TEXT)


def refused(msg: dict[int, str], reason: str, *words: str) -> None:
    assert msg[codec.EXEC_TYPE] == REJECTED, msg
    assert msg[codec.ORD_REJ_REASON] == reason, msg
    for word in words:
        assert word in msg[codec.TEXT], msg[codec.TEXT]


def test_max_order_quantity(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "R-QTY", "max_order_qty", "1000")
    accepted(order(client, "R-QTY", 999))
    accepted(order(client, "R-QTY", 1000))
    refused(order(client, "R-QTY", 1001), "3", "max order quantity 1000", "1001")


def test_max_order_notional(rstack: Stack, client: FixClient) -> None:
    # 160.00 is inside the 10% collar around 150; 6250 x 160 = 1,000,000 exactly
    accepted(order(client, "R-NOT", 6249, "160.00"))
    accepted(order(client, "R-NOT", 6250, "160.00"))
    refused(order(client, "R-NOT", 6251, "160.00"), "3", "max order notional 1000000")


def test_price_collar(rstack: Stack, client: FixClient) -> None:
    # AAPL is traded by no other test here: its reference is the NBBO mid 190.00 (189.99 / 190.01)
    assert rstack.app.engine.reference_price("AAPL") == Decimal("190.00")  # type: ignore[attr-defined]
    accepted(order(client, "R-COL", 100, "208.99", symbol="AAPL"))
    accepted(order(client, "R-COL", 101, "209.00", symbol="AAPL"))
    refused(order(client, "R-COL", 102, "209.01", symbol="AAPL"), "3", "collar 10%", "209.01", "190")


def test_market_orders_and_price_bounds(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "R-MKT", "market_orders_allowed", "false")
    refused(order(client, "R-MKT", 100, None, ord_type="1"), "3", "market orders")
    limit(rstack, "R-MKT", "max_price", "155")
    accepted(order(client, "R-MKT", 100, "154.99"))
    accepted(order(client, "R-MKT", 101, "155.00"))
    refused(order(client, "R-MKT", 102, "155.01"), "3", "max price 155")


def test_duplicate_content_within_a_second(rstack: Stack, client: FixClient) -> None:
    accepted(order(client, "R-DUP", 100, "151.00"))
    refused(order(client, "R-DUP", 100, "151.00"), "6", "duplicate")
    accepted(order(client, "R-DUP", 100, "151.01"))


def test_open_orders_per_account_and_symbol(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "R-OPEN", "max_open_orders", "2")
    accepted(order(client, "R-OPEN", 100, "152.00"))
    accepted(order(client, "R-OPEN", 101, "152.00"))
    refused(order(client, "R-OPEN", 102, "152.00"), "3", "open orders", "2")


def test_position_limit_counts_open_orders(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "R-POS", "max_position", "300")
    accepted(order(client, "R-POS", 200, "149.00", side="1"))
    accepted(order(client, "R-POS", 100, "148.99", side="1"))  # at the limit with open orders
    refused(order(client, "R-POS", 1, "148.98", side="1"), "3", "position")


def test_credit_limit(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "R-CRED", "credit_limit", "30000")
    accepted(order(client, "R-CRED", 100, "149.00", side="1"))  # 14,900
    accepted(order(client, "R-CRED", 100, "151.00"))  # 15,100: exactly 30,000 open
    refused(order(client, "R-CRED", 1, "151.01"), "3", "credit")


def test_restricted_symbol(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "*", "restricted", "+TSLA")
    try:
        refused(order(client, "R-RES", 100, "250.00", symbol="TSLA"), "1", "restricted symbol TSLA")
        accepted(order(client, "R-RES", 100, "151.50"))
    finally:
        limit(rstack, "*", "restricted", "-TSLA")


def submits_last_second(stack: Stack, session: str) -> int:
    """What the rate check counts for `session` now, read on the engine thread."""
    rate = stack.app.risk.submit_rate  # type: ignore[attr-defined]
    count = operator(stack, c.EngineCall, lambda: rate.count(session, time.monotonic()))
    assert isinstance(count, int), count
    return count


def wait_rate_window_empty(stack: Stack, session: str, timeout: float = 5.0) -> None:
    """Until the session's earlier orders have left the rate check's one-second window."""
    deadline = time.monotonic() + timeout
    while submits_last_second(stack, session):
        assert time.monotonic() < deadline, f"{session}'s submit rate window did not empty"
        time.sleep(0.05)


def test_submit_rate_per_session(rstack: Stack, client: FixClient) -> None:
    limit(rstack, "*", "session_submit_rate", "5")
    try:
        wait_rate_window_empty(rstack, "CLIENT1")  # the other tests' orders do not count
        answers = [order(client, "R-RATE", 100 + i, "153.00") for i in range(6)]
        assert [m[codec.EXEC_TYPE] for m in answers[:5]] == [NEW] * 5
        refused(answers[5], "3", "rate")
    finally:
        limit(rstack, "*", "session_submit_rate", "100")
        wait_rate_window_empty(rstack, "CLIENT1")


def test_kill_switch_refuses_new_orders_but_cancels_pass(rstack: Stack, client: FixClient) -> None:
    working = order(client, "R-HALT", 100, "154.00")
    accepted(working)
    before, after, _ = cast(tuple[str, str, int], operator(rstack, c.SetTradingState, "account:R-HALT", "HALTED",
                                                            "tester", "test halt"))
    assert (before, after) == ("ACTIVE", "HALTED")
    try:
        refused(order(client, "R-HALT", 101, "154.00"), "99", "HALTED")
        x = client.cancel(working[codec.CL_ORD_ID], "IBM", "2", 100)
        client.wait_report(x, status=CANCELED)
    finally:
        operator(rstack, c.SetTradingState, "account:R-HALT", "ACTIVE", "tester", "done")
    accepted(order(client, "R-HALT", 102, "154.00"))


def test_firm_halt_with_cancel_open(rstack: Stack, client: FixClient) -> None:
    a = order(client, "R-FIRM", 100, "154.50")
    accepted(a)
    _, _, canceled = cast(tuple[str, str, int], operator(rstack, c.SetTradingState, "firm", "HALTED", "tester",
                                                          "kill switch", cancel_open=True))
    try:
        assert canceled >= 1
        done = client.wait_report(a[codec.CL_ORD_ID], status=CANCELED)
        assert "trading halted: kill switch" in done[codec.TEXT]
        refused(order(client, "R-FIRM", 101, "154.50"), "99", "HALTED")
    finally:
        operator(rstack, c.SetTradingState, "firm", "ACTIVE", "tester", "resume")


# --- access ---------------------------------------------------------------------------------------
def logout_text(client: FixClient, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.app.admin.get(timeout=0.2)
        except queue.Empty:
            continue
        if msg.get(codec.MSG_TYPE) == "5":
            return msg.get(codec.TEXT, "")
    raise TimeoutError("no Logout")


def try_logon(stack: Stack, comp_id: str, password: str, begin: str = "FIX.4.4", reset: bool = False,
              seq: int = 1) -> tuple[None, str]:
    """A raw logon attempt (simplefix over a socket): what an impostor or a misconfigured client sends.
    Returns the Text of the Logout we answer with ("" if the socket was just closed)."""
    import socket

    import simplefix

    msg = simplefix.FixMessage()
    msg.append_pair(8, begin)
    msg.append_pair(35, "A")
    msg.append_pair(49, comp_id)
    msg.append_pair(56, "FIXOMS")
    msg.append_pair(34, seq)
    msg.append_utc_timestamp(52)
    msg.append_pair(98, 0)
    msg.append_pair(108, 30)
    if reset:
        msg.append_pair(141, "Y")
    if begin == "FIX.4.4":
        msg.append_pair(codec.USERNAME, comp_id)
        msg.append_pair(codec.PASSWORD, password)
    parser = simplefix.FixParser()
    with socket.create_connection(("127.0.0.1", stack.acceptor_port), timeout=10) as sock:
        sock.sendall(msg.encode())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                return None, ""
            parser.append_buffer(data)
            reply = parser.get_message()
            while reply is not None:
                if reply.get(35) == b"5":
                    return None, (reply.get(58) or b"").decode()
                reply = parser.get_message()
    raise TimeoutError("no answer to the logon")


def test_unknown_comp_id_is_refused(rstack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    cl = FixClient("NOBODY", rstack.acceptor_port, rstack.tmp / "nobody", "FIX.4.4",
                   logon_fields=[(codec.USERNAME, "NOBODY"), (codec.PASSWORD, "x")])
    def refusal_logged() -> bool:
        return any("unknown session" in r.getMessage() and "NOBODY" in r.getMessage() for r in caplog.records)

    with caplog.at_level("WARNING"):
        cl.start(wait=None)
        try:
            deadline = time.monotonic() + 10
            while not refusal_logged():  # the engine refused the logon (QuickFIX closed the socket)
                assert time.monotonic() < deadline, "no refused logon of NOBODY logged"
                time.sleep(0.05)
        finally:
            cl.stop()
    assert not cl.app.logon_event.is_set()


def test_address_outside_the_allow_list_is_refused(rstack: Stack) -> None:
    from oms.access import Credential

    auth = rstack.app.gateway.authenticator  # type: ignore[attr-defined]
    saved = auth.credentials["CLIENT2"]
    auth.credentials["CLIENT2"] = Credential("CLIENT2", "CLIENT2", saved.salt, saved.hash, frozenset({"10.1.2.3"}))
    try:
        _, text = try_logon(rstack, "CLIENT2", "", begin="FIX.4.2")
        assert text.endswith("logon from address 127.0.0.1 not allowed for CLIENT2")
    finally:
        auth.credentials["CLIENT2"] = saved


def test_cancel_on_disconnect_cancels_at_the_venue(rstack: Stack) -> None:
    c2 = rstack.client("CLIENT2", "FIX.4.2")
    working = [order(c2, "ACC-2", 100 + i, "156.00") for i in range(3)]
    for m in working:
        accepted(m)
    eng = rstack.app.engine  # type: ignore[attr-defined]
    children = [ch.child_id for o in eng.orders.values() if o.session == "CLIENT2" and not o.is_terminal
                for ch in o.children.values()]
    assert len(children) == 3
    c2.stop()
    venue = rstack.venue("VENUE-B")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = [venue.orders[venue.by_cl_ord_id[("FIXOMS", cid)]].status.value for cid in children]
        if statuses == [CANCELED] * 3:
            break
        time.sleep(0.05)
    assert statuses == [CANCELED] * 3
    assert all(o.ord_status.value == CANCELED for o in eng.orders.values() if o.session == "CLIENT2")
    rstack.clients.remove(c2)


def test_every_risk_change_is_journaled_with_who(rstack: Stack) -> None:
    from sqlalchemy import select

    from oms.schema import events_t

    rstack.app.journal.sync()  # type: ignore[attr-defined]  # the tables trail the log by a pass
    with rstack.app.journal.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(events_t.c.kind, events_t.c.payload)
                            .where(events_t.c.kind.in_(["RiskLimitChanged", "TradingStateChanged"]))).all()
    assert rows and all(r.payload["who"] == "tester" for r in rows)
    assert any(r.kind == "TradingStateChanged" and r.payload["after"] == "HALTED" for r in rows)


@pytest.fixture
def client_gone(rstack: Stack, client: FixClient) -> None:
    """The real CLIENT1 logs out (for the rest of the module), so an impostor can try its session."""
    client.stop()
    if client in rstack.clients:
        rstack.clients.remove(client)
    ours = fix.Session.lookupSession(fix.SessionID("FIX.4.4", "FIXOMS", "CLIENT1"))
    deadline = time.monotonic() + 10
    while ours.isLoggedOn():  # the engine has seen the Logout: the session is free for the impostor
        assert time.monotonic() < deadline, "the engine still has CLIENT1 logged on"
        time.sleep(0.05)


def test_bad_password_is_refused_with_a_reason(rstack: Stack, client_gone: None) -> None:
    _, text = try_logon(rstack, "CLIENT1", "wrong", seq=1000)
    assert text == "Rejected Logon Attempt: invalid username or password"


def test_refused_reset_logon_leaves_sequence_numbers_untouched(rstack: Stack, client_gone: None) -> None:
    sid = fix.SessionID("FIX.4.4", "FIXOMS", "CLIENT1")
    session = fix.Session.lookupSession(sid)
    before = (session.getExpectedSenderNum(), session.getExpectedTargetNum())
    assert before[0] > 1 and before[1] > 1
    _, text = try_logon(rstack, "CLIENT1", "wrong", reset=True)
    assert text.endswith("invalid username or password")
    sender, target = session.getExpectedSenderNum(), session.getExpectedTargetNum()
    assert target == before[1]
    assert sender == before[0] + 1  # our Logout used one outgoing number; nothing was reset
    # the real client logs on again with its stored numbers, no reset needed
    again = rstack.client()
    assert again.logged_on


_ = (threading, Decimal, Path)
