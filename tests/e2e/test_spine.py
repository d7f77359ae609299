"""End to end over real QuickFIX sessions: client -> engine -> simulated venue -> fills back, journaled.

Runs against SQLite and PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import time
from decimal import Decimal

from fix_engine import codec
from tests.conftest import Stack

NEW, PARTIAL, FILLED, CANCELED, PENDING_CANCEL, REJECTED = "0", "1", "2", "4", "6", "8"
TRADE = "F"


def flow(msgs: list[dict[int, str]]) -> list[tuple[str, str, str, str, str]]:
    """(ExecType, OrdStatus, CumQty, LeavesQty, LastQty) of each ExecutionReport."""
    return [
        (m[codec.EXEC_TYPE], m[codec.ORD_STATUS], m[codec.CUM_QTY], m[codec.LEAVES_QTY], m.get(codec.LAST_QTY, "0"))
        for m in msgs
        if m[codec.MSG_TYPE] == codec.EXECUTION_REPORT
    ]


def venue_depth(stack: Stack, venue_index: int, symbol: str, side: int) -> list[tuple[int, int, int]]:

    return stack.sims[venue_index].app.books[symbol].depth(side, 10)  # read while the venue is idle


def test_market_order_fills(stack: Stack) -> None:
    c1 = stack.client()
    best = venue_depth(stack, 0, "AAPL", 1)[0]
    cl = c1.new_order("AAPL", "1", 100, ord_type="1")
    fill = c1.wait_report(cl, status=FILLED)
    assert flow(c1.reports_for(cl)) == [(NEW, NEW, "0", "100", "0"), (TRADE, FILLED, "100", "0", "100")]
    assert Decimal(fill[codec.LAST_PX]) == Decimal(best[0]) / 100
    assert Decimal(fill[codec.AVG_PX]) == Decimal(best[0]) / 100
    assert fill[codec.LAST_MKT] == "VENUE-A"
    assert fill[codec.ACCOUNT] == "ACC-1"
    assert fill[codec.ORDER_ID].startswith("OMS1-")
    rows = stack.orders()
    assert [(r["cl_ord_id"], r["status"], r["cum_qty"]) for r in rows] == [(cl, "FILLED", "100")]


def test_partial_fill_then_cancel(stack: Stack) -> None:
    c1 = stack.client()
    asks = venue_depth(stack, 0, "MSFT", 1)
    limit = Decimal("410.02")
    available = sum(q for px, q, _ in asks if px <= 41002)
    cl = c1.new_order("MSFT", "1", 2000, price=limit)
    c1.wait_report(cl, status=PARTIAL)
    c1.drain(0.3)
    x = c1.cancel(cl, "MSFT", "1", 2000)
    done = c1.wait_report(x, status=CANCELED)
    assert done[codec.ORIG_CL_ORD_ID] == cl
    assert done[codec.CUM_QTY] == str(available)
    assert done[codec.LEAVES_QTY] == "0"
    f = flow(c1.reports_for(cl))
    assert f[0] == (NEW, NEW, "0", "2000", "0")
    fills = [r for r in f if r[0] == TRADE]
    assert sum(int(r[4]) for r in fills) == available
    assert f[-2][:2] == (PENDING_CANCEL, PENDING_CANCEL)
    assert f[-1] == (CANCELED, CANCELED, str(available), "0", "0")


def test_resting_order_and_status(stack: Stack) -> None:
    c1 = stack.client()
    cl = c1.new_order("IBM", "2", 300, price="155")
    c1.wait_report(cl, status=NEW)
    c1.status(cl, "IBM", "2")
    st = c1.wait_report(cl, exec_type="I")
    assert (st[codec.ORD_STATUS], st[codec.LEAVES_QTY], st[codec.CUM_QTY]) == (NEW, "300", "0")


def test_rejects_name_the_rule_and_keep_the_session_up(stack: Stack) -> None:
    c1 = stack.client()
    cases = [
        (dict(symbol="XYZ", side="1", qty=100, ord_type="1"), "1", "unknown symbol"),
        (dict(symbol="AAPL", side="1", qty=0, ord_type="1"), "13", "OrderQty must be positive"),
        (dict(symbol="AAPL", side="1", qty=-5, ord_type="1"), "13", "OrderQty must be positive"),
        (dict(symbol="AAPL", side="1", qty="10.5", ord_type="1"), "13", "whole number"),
        (dict(symbol="AAPL", side="1", qty=100, ord_type="2"), "99", "requires Price(44)"),
    ]
    for kwargs, reason, text in cases:
        cl = c1.new_order(**kwargs)  # type: ignore[arg-type]
        rej = c1.wait_report(cl, status=REJECTED)
        assert rej[codec.EXEC_TYPE] == REJECTED
        assert rej[codec.ORD_REJ_REASON] == reason, rej
        assert text in rej[codec.TEXT]
    assert c1.logged_on
    ok = c1.new_order("AAPL", "1", 100, ord_type="1")
    c1.wait_report(ok, status=FILLED)


def test_duplicate_cl_ord_id_and_unknown_cancel(stack: Stack) -> None:
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 100, price="140")
    c1.wait_report(cl, status=NEW)
    c1.new_order("IBM", "1", 100, price="140", cl_ord_id=cl)
    dup = c1.wait_report(cl, status=REJECTED)
    assert dup[codec.ORD_REJ_REASON] == "6"
    c1.cancel("NO-SUCH-ORDER", "IBM", "1", 100, cl_ord_id="X-unknown")
    rej = c1.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT)
    assert (rej[codec.CXL_REJ_REASON], rej[codec.CL_ORD_ID]) == ("1", "X-unknown")


def test_other_clients_order_is_unknown(stack: Stack) -> None:
    c1 = stack.client()
    c2 = stack.client("CLIENT2", "FIX.4.2")
    cl = c1.new_order("IBM", "1", 100, price="140")
    c1.wait_report(cl, status=NEW)
    c2.cancel(cl, "IBM", "1", 100, cl_ord_id="steal-1")
    rej = c2.wait_for(lambda m: m[codec.MSG_TYPE] == codec.CANCEL_REJECT)
    assert rej[codec.CXL_REJ_REASON] == "1"
    c1.status(cl, "IBM", "1")
    assert c1.wait_report(cl, exec_type="I")[codec.ORD_STATUS] == NEW


def test_fix42_client_fills(stack: Stack) -> None:
    c2 = stack.client("CLIENT2", "FIX.4.2")
    cl = c2.new_order("TSLA", "2", 200, ord_type="1")
    c2.wait_report(cl, status=FILLED)
    reports = c2.reports_for(cl)
    assert [m[codec.EXEC_TYPE] for m in reports][0] == NEW
    assert reports[-1][codec.EXEC_TYPE] == "2"  # FIX 4.2: ExecType Fill
    assert all(m[codec.EXEC_TRANS_TYPE] == "0" for m in reports)
    assert reports[-1][codec.ACCOUNT] == "ACC-2"


def test_restart_keeps_every_order_and_cancel_works_after(stack: Stack) -> None:
    c1 = stack.client()
    filled = c1.new_order("AAPL", "1", 100, ord_type="1")
    c1.wait_report(filled, status=FILLED)
    partial = c1.new_order("MSFT", "1", 2000, price="410.02")
    c1.wait_report(partial, status=PARTIAL)
    resting = c1.new_order("IBM", "2", 300, price="155")
    c1.wait_report(resting, status=NEW)
    rejected = c1.new_order("XYZ", "1", 1, ord_type="1")
    c1.wait_report(rejected, status=REJECTED)
    c1.drain(0.3)
    before = stack.orders()

    stack.stop_engine()
    stack.start_engine()
    after = stack.orders()
    assert after == before
    assert [r["status"] for r in after] == ["FILLED", "PARTIALLY_FILLED", "NEW", "REJECTED"]

    c1.app.logon_event.wait(15)
    assert c1.logged_on
    for cl, symbol, side in ((partial, "MSFT", "1"), (resting, "IBM", "2")):
        x = c1.cancel(cl, symbol, side, 100)
        c1.wait_report(x, status=CANCELED)
    final = {r["cl_ord_id"]: r["status"] for r in stack.orders()}
    assert final[filled] == "FILLED"
    assert sum(1 for s in final.values() if s == "CANCELED") == 2
    # a new order after restart gets a fresh OrderID
    again = c1.new_order("AAPL", "1", 100, ord_type="1")
    assert c1.wait_report(again, status=FILLED)[codec.ORDER_ID] == "OMS1-5"


def test_market_data_reaches_the_engine(stack: Stack) -> None:
    """Each venue publishes its book over FIX (V -> W, then X); the engine keeps the quotes."""
    import time as _t
    from decimal import Decimal as D

    from oms.enums import Side

    eng = stack.app.engine  # type: ignore[attr-defined]
    deadline = _t.monotonic() + 10
    while _t.monotonic() < deadline and ("VENUE-B", "IBM") not in eng.quotes:
        _t.sleep(0.05)
    assert eng.quotes[("VENUE-B", "IBM")] == (D("149.99"), D("150.01"))
    assert eng.reference_price("IBM") == D("150.00")
    venue_b = stack.venue("VENUE-B")
    venue_b.house_order("IBM", Side.BUY, D("150.00"), 100)  # a better bid: an X update
    while _t.monotonic() < deadline and eng.quotes[("VENUE-B", "IBM")][0] != D("150.00"):
        _t.sleep(0.05)
    assert eng.quotes[("VENUE-B", "IBM")] == (D("150.00"), D("150.01"))


def test_drop_copy_receives_its_accounts_reports_only(stack: Stack) -> None:
    dc = stack.client("DROPCOPY1")
    c1 = stack.client()
    c2 = stack.client("CLIENT2", "FIX.4.2")
    mine = c1.new_order("AAPL", "1", 100, ord_type="1")  # ACC-1: copied
    c1.wait_report(mine, status=FILLED)
    other = c2.new_order("TSLA", "2", 100, ord_type="1")  # ACC-2: not copied
    c2.wait_report(other, status=FILLED)
    copies = [dc.wait_report(mine, status=s) for s in (NEW, FILLED)]
    assert all(m[797] == "Y" and m[codec.ACCOUNT] == "ACC-1" for m in copies)
    dc.drain(0.5)
    assert not [m for m in dc.received if m.get(codec.CL_ORD_ID) == other]
    # a drop copy session may not trade
    dc.new_order("AAPL", "1", 100, ord_type="1", cl_ord_id="DC-1")
    bmr = dc.wait_for(lambda m: m[codec.MSG_TYPE] == codec.BUSINESS_REJECT)
    assert "drop copy" in bmr[codec.TEXT]


def test_prometheus_metrics(stack: Stack) -> None:
    import urllib.request

    c1 = stack.client()
    cl = c1.new_order("AAPL", "1", 100, ord_type="1")
    c1.wait_report(cl, status=FILLED)
    bad = c1.new_order("XYZ", "1", 100, ord_type="1")
    c1.wait_report(bad, status=REJECTED)
    port = stack.app.metrics.port  # type: ignore[attr-defined]

    def scrape() -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    # The engine counts a batch after it has sent the batch's reports: the client may be first.
    deadline = time.monotonic() + 5
    values = scrape()
    while values.get("fixoms_orders_total") != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        values = scrape()
    assert values["fixoms_orders_total"] == 2
    assert values['fixoms_rejects_total{reason="1"}'] == 1
    assert values["fixoms_fills_total"] >= 1
    assert values['fixoms_sessions_up{role="client"}'] == 1
    assert values['fixoms_sessions_up{role="venue"}'] == 2
    assert values["fixoms_batch_seconds_count"] > 0 and values["fixoms_journal_commit_seconds_count"] > 0
    # the ack latency of both orders (New of the one, Rejected of the other), a real duration each
    assert values["fixoms_ack_seconds_count"] == 2
    assert 0 < values["fixoms_ack_seconds_sum"] < 10
