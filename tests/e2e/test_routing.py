"""Smart order routing over real sessions (RoutingStrategy 20847=sweep asks for the sweep): IBM is listed on both simulated venues (same reference
price, different seeded depth), VENUE-B is cheaper to take from (fixoms.toml [venue_profiles])."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from fix_engine import codec
from oms.enums import Side
from tests.conftest import Stack, run_stack

NEW, FILLED = "0", "2"
BOTH = {"VENUE-A": ("AAPL", "MSFT", "IBM"), "VENUE-B": ("IBM", "TSLA")}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture
def stack(tmp_path: Path, db_url: str) -> Iterator[Stack]:
    yield from run_stack(tmp_path, db_url, BOTH)


def wait_quotes(stack: Stack, symbol: str, venues: set[str]) -> None:
    eng = stack.app.engine  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if venues <= {v for (v, s) in eng.quotes if s == symbol}:
            return
        time.sleep(0.05)
    raise TimeoutError(f"no quotes from {venues} for {symbol}")


def test_order_bigger_than_the_best_level_is_split_in_price_then_fee_order(stack: Stack) -> None:
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    a_best = stack.venue("VENUE-A").books["IBM"].best_ask()
    b_best = stack.venue("VENUE-B").books["IBM"].best_ask()
    assert a_best[0] == b_best[0] == 15001  # both venues' touch is 150.01
    qty = a_best[1] + b_best[1]  # more than either venue shows at the touch
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", qty, price="150.01", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    done = c1.wait_report(cl, status=FILLED)
    assert Decimal(done[codec.AVG_PX]) == Decimal("150.01")
    order = stack.app.engine.orders[done[codec.ORDER_ID]]  # type: ignore[attr-defined]
    children = sorted(order.children.values(), key=lambda ch: int(ch.child_id.rsplit(".", 1)[1]))
    # same price: the cheaper venue to take from (VENUE-B, taker fee 0.0025 < 0.0030) first
    assert [(ch.venue, ch.qty, ch.price) for ch in children[:2]] == [
        ("VENUE-B", Decimal(b_best[1]), Decimal("150.01")), ("VENUE-A", Decimal(a_best[1]), Decimal("150.01"))]
    fills = [m for m in c1.reports_for(cl) if m[codec.EXEC_TYPE] == "F"]
    assert {m[codec.LAST_MKT] for m in fills} == {"VENUE-A", "VENUE-B"}


def test_internal_cross_happens_at_the_mid_and_inside_the_nbbo(stack: Stack) -> None:
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    c1 = stack.client()
    c2 = stack.client("CLIENT2", "FIX.4.2")
    # CLIENT2 (ACC-2) rests a marketable sell on the internal book
    resting = c2.new_order("IBM", "2", 300, price="149.99", extra=[(codec.EX_DESTINATION, "INTERNAL")])
    c2.wait_report(resting, status=NEW)
    eng = stack.app.engine  # type: ignore[attr-defined]
    assert eng.reference_price("IBM") == Decimal("150.00")
    # CLIENT1 (ACC-1) buys, marketable too: both sides marketable -> cross at the NBBO mid
    cl = c1.new_order("IBM", "1", 200, price="150.05")
    fill = c1.wait_report(cl, status=FILLED)
    assert (fill[codec.LAST_MKT], fill[codec.LAST_PX], fill[codec.LAST_QTY]) == ("INTERNAL", "150", "200")
    other = c2.wait_for(lambda m: m.get(codec.CL_ORD_ID) == resting and m.get(codec.EXEC_TYPE) == "1")
    assert (other[codec.LAST_PX], other[codec.LAST_QTY], other[codec.LAST_MKT]) == ("150", "200", "INTERNAL")
    assert Decimal("149.99") <= Decimal(fill[codec.LAST_PX]) <= Decimal("150.01")  # never through the NBBO


def test_a_venue_that_disconnects_gets_no_more_children(stack: Stack) -> None:
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    eng = stack.app.engine  # type: ignore[attr-defined]
    c1 = stack.client()
    first = c1.new_order("IBM", "1", 100, price="150.05", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    c1.wait_report(first, status=FILLED)
    down = next(s for s in stack.sims if s.app.name == "VENUE-B")
    down.stop()
    stack.sims.remove(down)
    deadline = time.monotonic() + 10
    while "VENUE-B" in eng.venues_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "VENUE-B" not in eng.venues_up
    sizes = sum(q for _, q, _ in stack.venue("VENUE-A").books["IBM"].depth(1, 3))
    cl = c1.new_order("IBM", "1", sizes, price="150.03", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    c1.wait_report(cl, status=FILLED)
    order = next(o for o in eng.orders.values() if o.cl_ord_id == cl)
    assert {ch.venue for ch in order.children.values()} == {"VENUE-A"}


def test_a_venue_that_halts_a_symbol_gets_no_children_in_it_until_it_resumes(stack: Stack) -> None:
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    eng = stack.app.engine  # type: ignore[attr-defined]
    venue_b = next(s for s in stack.sims if s.app.name == "VENUE-B").app
    venue_b.halt("IBM", reason="news pending")  # SecurityStatus 35=f, 326=2 to the engine
    deadline = time.monotonic() + 10
    while "VENUE-B" not in eng.halted_at.get("IBM", set()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert eng.halted_at["IBM"] == {"VENUE-B"}
    c1 = stack.client()
    # more than VENUE-A shows at its touch: without the halt the sweep would take VENUE-B's touch too
    size = stack.venue("VENUE-A").books["IBM"].best_ask()[1] + 50
    cl = c1.new_order("IBM", "1", size, price="150.03", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    c1.wait_report(cl, status=FILLED)
    order = next(o for o in eng.orders.values() if o.cl_ord_id == cl)
    assert {ch.venue for ch in order.children.values()} == {"VENUE-A"}
    venue_b.halt("IBM", halted=False)  # 326=17: ready to trade
    deadline = time.monotonic() + 10
    while eng.halted_at["IBM"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not eng.halted_at["IBM"]
    size = stack.venue("VENUE-B").books["IBM"].best_ask()[1]
    cl = c1.new_order("IBM", "1", size, price="150.01", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    c1.wait_report(cl, status=FILLED)
    order = next(o for o in eng.orders.values() if o.cl_ord_id == cl)
    assert "VENUE-B" in {ch.venue for ch in order.children.values()}  # the cheaper venue is used again


def test_the_residual_of_a_venue_that_drops_mid_order_finishes_elsewhere(stack: Stack) -> None:
    """A resting buy works at one venue; that venue's session drops (its simulator stops: cancel on
    disconnect). After the grace period ([engine] venue_down_grace_s) the child is in doubt, the
    parent's rest goes to the other venue and fills there; when the venue comes back its answer to the
    status request settles the old child, and the client never sees more than it asked for."""
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    eng = stack.app.engine  # type: ignore[attr-defined]
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 500, price="149.97")  # below both asks: it rests
    oid = c1.wait_report(cl, status=NEW)[codec.ORDER_ID]
    order = eng.orders[oid]
    first = {ch.venue for ch in order.children.values()}
    gone = "VENUE-B" if "VENUE-B" in first else "VENUE-A"
    other = "VENUE-A" if gone == "VENUE-B" else "VENUE-B"
    sim = next(s for s in stack.sims if s.app.name == gone)
    sim.stop()
    stack.sims.remove(sim)
    deadline = time.monotonic() + 15

    def at_other() -> Decimal:
        return sum((ch.working_qty for ch in list(order.children.values()) if ch.venue == other), Decimal(0))

    while time.monotonic() < deadline and at_other() < 500:
        time.sleep(0.05)
    stranded = [ch for ch in order.children.values() if ch.venue == gone]
    assert stranded and all(ch.in_doubt and ch.text == f"{gone} down" for ch in stranded)
    assert at_other() == 500 and order.working_child_qty == 500
    # someone sells down to the parent's price on the venue that is up (through the house bids ahead
    # of ours): the residual fills there
    stack.venue(other).house_order("IBM", Side.SELL, Decimal("149.97"), 10_000)
    done = c1.wait_report(cl, status=FILLED, timeout=15)
    assert Decimal(done[codec.CUM_QTY]) == 500
    assert {m[codec.LAST_MKT] for m in c1.reports_for(cl) if m[codec.EXEC_TYPE] == "F"} == {other}
    # the venue comes back (empty book: it canceled on disconnect) and settles the in-doubt child
    from tests.conftest import REFERENCE
    from venues.simulator import SimulatorServer

    back = SimulatorServer(gone, stack.venue_ports[gone], stack.tmp / "venues" / gone, seed=5,
                           symbols={s: REFERENCE[s] for s in BOTH[gone]})
    back.start()
    stack.sims.append(back)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(ch.in_doubt for ch in order.children.values()):
        time.sleep(0.1)
    assert not any(ch.in_doubt for ch in order.children.values())
    assert order.cum_qty == order.order_qty == 500


def test_tca_is_journaled_and_reported(stack: Stack) -> None:
    import json

    from click.testing import CliRunner

    from fixoms.cli import cli

    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    c1 = stack.client()
    cl = c1.new_order("IBM", "1", 300, price="150.05", extra=[(codec.ROUTING_STRATEGY, "sweep")])
    c1.wait_report(cl, status=FILLED)
    stack.app.journal.sync()  # type: ignore[attr-defined]  # the report's batch (with its TCA) is in the tables
    cfg = stack.tmp / "fixoms.toml"
    cfg.write_text(f'[database]\nurl = "{stack.db_url}"\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg), "report", "tca", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    (mine,) = [o for o in data["orders"] if o["filled_qty"] == "300"]
    assert mine["arrival_mid"] == "150.00" and mine["fill_rate"] == "1"
    assert Decimal(mine["shortfall_bps"]) > 0  # bought above the arrival mid: a cost
    assert Decimal(mine["fees"]) > 0 and set(mine["venues"]) <= {"VENUE-A", "VENUE-B"}
    assert data["summary"]["parents"] == 1
    table = CliRunner().invoke(cli, ["--config", str(cfg), "report", "tca"])
    assert table.exit_code == 0 and "shortfall" in table.output


def test_venue_books_move_over_time_and_the_router_follows(stack: Stack) -> None:
    wait_quotes(stack, "IBM", {"VENUE-A", "VENUE-B"})
    router = stack.app.router  # type: ignore[attr-defined]
    venue = stack.venue("VENUE-B")

    def view() -> object:
        return tuple(router.book.venue_levels("VENUE-B", "IBM", side) for side in (Side.BUY, Side.SELL))

    seen = {view()}
    venue.start_activity(0.005, seed=11)  # seeded background participants
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 5 and time.monotonic() < deadline:
            seen.add(view())
            time.sleep(0.01)
    finally:
        venue.stop_activity()
    assert len(seen) >= 5  # the router's consolidated book followed the venue's moving book
    # the venue's book no longer moves: once its last update is in, the router holds it level for level
    with venue.paused():
        bids, asks = venue._levels("IBM")
        best = venue.books["IBM"].best_ask()
    deadline = time.monotonic() + 10
    while view() != (tuple(bids), tuple(asks)):
        assert time.monotonic() < deadline, f"router's VENUE-B book {view()} != the venue's {(bids, asks)}"
        time.sleep(0.01)
    nbbo = stack.app.router.nbbo("IBM")  # type: ignore[attr-defined]
    assert nbbo is not None and nbbo.ask <= Decimal(best[0]) / 100
