"""The engine's venue-fault decisions, driven by its clock (Tick) so every step is deterministic: a venue
that drops past the grace period, a venue that never acknowledges, a cancel that is never answered, and
the late fills of a child put in doubt. The engine runs with its real journal (SQLite) and the real
smart router; the client and venue sides are the engine's ports in memory (tests/oms/test_engine_properties).
Over real sessions the same paths are in tests/fault/test_venue_faults.py and tests/e2e/test_routing.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from oms import commands as c
from oms.engine import Engine, EngineConfig
from oms.enums import CxlRejReason, ExecType, OrdStatus, OrdType, Side
from oms.journal import Journal
from oms.reports import VenueStatusRequest
from oms.schema import events_t
from sor.router import SmartRouter
from tests.oms.test_engine_properties import Client, Venue

GRACE, ACK = 3.0, 2.0
BOOK = ((Decimal("149.99"), Decimal(1000)),), ((Decimal("150.01"), Decimal(1000)),)


class StatusVenue(Venue):
    """Also records the status requests the engine sends."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.status_requests: list[VenueStatusRequest] = []

    def send_status_request(self, msg: object) -> None:
        assert isinstance(msg, VenueStatusRequest)
        self.status_requests.append(msg)


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.journal = Journal.open(f"sqlite:///{tmp / 'j.db'}", "T")
        self.journal.create_schema()
        self.client = Client()
        self.venues = {"V1": StatusVenue("V1"), "V2": StatusVenue("V2")}
        router = SmartRouter.from_config({"IBM": "V1"}, {"default_strategy": "single", "internal_venue": ""}, {})
        self.engine = Engine(self.journal, router, self.client, dict(self.venues),
                             EngineConfig(instance="T", symbols=frozenset({"IBM"}), venue_down_grace_s=GRACE,
                                          venue_ack_timeout_s=ACK, tick_s=0))
        self.engine.recover()
        self.clock = time.monotonic()
        self.engine.clock = lambda: self.clock  # requests are timed on the same clock as the ticks
        self.run(c.VenueSessionUp("V1"), c.VenueSessionUp("V2"),
                 *(c.MarketData(v, "IBM", *BOOK) for v in self.venues))

    def run(self, *commands: object) -> None:
        assert self.engine.process(list(commands)) == []

    def tick(self, seconds: float) -> None:
        self.clock += seconds
        self.run(c.Tick(self.clock))

    def buy(self, cl: str, qty: int, price: str = "149.97") -> str:
        self.run(c.NewOrder("S1", cl, "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(qty), Decimal(price)))
        return self.engine.by_cl_ord_id[("S1", cl)]

    def ack(self, venue: str, child_id: str) -> None:
        self.run(c.VenueReport(venue, child_id, None, "VO", f"A-{child_id}", ExecType.NEW, OrdStatus.NEW))

    def events(self, kind: str) -> list[dict[str, object]]:
        self.journal.sync()  # the derived tables trail the log: project what the engine appended
        with self.journal.engine.connect() as conn:
            return [r.payload for r in conn.execute(select(events_t.c.payload).where(events_t.c.kind == kind))]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.journal.engine.dispose()


def test_a_dropped_venues_children_go_in_doubt_after_the_grace_period_and_the_rest_moves(h: Harness) -> None:
    oid = h.buy("C1", 500)
    order = h.engine.orders[oid]
    (first,) = order.children.values()
    h.ack(first.venue, first.child_id)
    other = "V2" if first.venue == "V1" else "V1"
    h.run(c.VenueSessionDown(first.venue))
    h.tick(GRACE / 2)
    assert not first.in_doubt and len(order.children) == 1  # inside the grace period: nothing moves
    h.tick(GRACE)
    assert first.in_doubt and first.text == f"{first.venue} down"
    moved = [ch for ch in order.children.values() if ch.venue == other]
    assert [ch.qty for ch in moved] == [Decimal(500)]
    assert order.cum_qty + order.working_child_qty <= order.order_qty
    # the client saw New only: the move is the broker's business
    assert [r.exec_type for r in h.client.reports] == [ExecType.NEW]


def test_late_fills_of_an_in_doubt_child_never_overfill_the_client(h: Harness) -> None:
    oid = h.buy("C1", 500)
    order = h.engine.orders[oid]
    (first,) = order.children.values()
    h.ack(first.venue, first.child_id)
    h.run(c.VenueSessionDown(first.venue))
    h.tick(GRACE + 1)
    (moved,) = [ch for ch in order.children.values() if ch is not first]
    h.ack(moved.venue, moved.child_id)
    # the venue comes back: it had filled 200 before the drop (and canceled the rest on disconnect)
    h.run(c.VenueSessionUp(first.venue))
    assert first.child_id in {r.child_id for r in h.venues[first.venue].status_requests}
    h.run(c.VenueReport(first.venue, first.child_id, None, "VO", "S1", ExecType.ORDER_STATUS,
                        OrdStatus.CANCELED, cum_qty=Decimal(200), avg_px=Decimal("149.97")))
    # the 500 at the other venue still work: the 200 cannot go to the client, they stay with the broker
    assert order.cum_qty == 0 and not first.in_doubt and first.status is OrdStatus.CANCELED
    (unallocated,) = h.events("FillUnallocated")
    assert (unallocated["qty"], unallocated["venue"]) == ("200", first.venue)
    # ... as the position of the broker's error account (what `fixoms positions` and the EOD report show)
    from oms.positions import Fill, compute
    from oms.queries import ERROR_ACCOUNT, executions

    book = compute(Fill(r.exec_id, r.account, r.symbol, r.side, r.last_qty, r.last_px, r.ts, r.status)
                   for r in executions(h.journal.engine))
    error = book.position(ERROR_ACCOUNT, "IBM")
    assert error is not None and (error.qty, error.avg_cost) == (Decimal(200), Decimal("149.97"))
    assert book.position("ACC", "IBM") is None  # the client has no fill yet
    h.run(c.VenueReport(moved.venue, moved.child_id, None, "VO", "F1", ExecType.TRADE, OrdStatus.FILLED,
                        Decimal(500), Decimal("149.97")))
    assert order.status is OrdStatus.FILLED and order.cum_qty == 500
    assert all(r.cum_qty <= r.order_qty for r in h.client.reports)


def test_a_late_fill_of_an_order_canceled_back_stays_with_the_broker(h: Harness) -> None:
    oid = h.buy("C1", 500)
    order = h.engine.orders[oid]
    (first,) = order.children.values()
    h.ack(first.venue, first.child_id)
    h.run(c.VenueSessionDown("V1"), c.VenueSessionDown("V2"))
    h.tick(GRACE + 1)  # nowhere to go: canceled back to the client, naming the venue
    assert order.status is OrdStatus.CANCELED and f"{first.venue} down" in order.text
    h.run(c.VenueSessionUp(first.venue))
    h.run(c.VenueReport(first.venue, first.child_id, None, "VO", "S1", ExecType.ORDER_STATUS,
                        OrdStatus.CANCELED, cum_qty=Decimal(100), avg_px=Decimal("149.97")))
    # a canceled order gets no fill after its terminal report: the 100 are the broker's to resolve
    assert order.cum_qty == 0 and [e["qty"] for e in h.events("FillUnallocated")] == ["100"]
    assert not first.in_doubt


def test_a_venue_that_never_acknowledges_is_asked_then_given_up_and_avoided(h: Harness) -> None:
    oid = h.buy("C1", 300)
    order = h.engine.orders[oid]
    (first,) = order.children.values()
    silent = h.venues[first.venue]
    h.tick(ACK + 0.1)
    assert [r.child_id for r in silent.status_requests] == [first.child_id]  # asked first
    assert not first.in_doubt
    h.tick(ACK + 0.1)
    assert first.in_doubt and first.text == f"no answer from {first.venue}"
    assert first.venue in h.engine.suspect
    (moved,) = [ch for ch in order.children.values() if ch is not first]
    assert moved.venue != first.venue and moved.qty == 300
    # while suspect, new orders avoid it; its first answer clears the suspicion
    oid2 = h.buy("C2", 100)
    assert {ch.venue for ch in h.engine.orders[oid2].children.values()} == {moved.venue}
    h.ack(first.venue, first.child_id)
    assert first.venue not in h.engine.suspect


def test_a_venue_busy_answering_others_is_given_longer_then_asked(h: Harness) -> None:
    """A mass cancel sends thousands of requests at once: while the venue keeps answering some, the others
    are not asked about (that would double its backlog) - up to BUSY_VENUE_WAIT timeouts, then they are.
    A venue that answers nothing is asked after one timeout (the tests above)."""
    from oms.decider import BUSY_VENUE_WAIT

    first = next(iter(h.engine.orders[h.buy("C1", 100)].children.values()))
    second = next(iter(h.engine.orders[h.buy("C2", 100)].children.values()))
    venue = h.venues[first.venue]
    assert second.venue == first.venue
    h.ack(second.venue, second.child_id)
    for i in range(BUSY_VENUE_WAIT - 1):
        h.clock += ACK * 0.9
        h.run(c.VenueReport(second.venue, second.child_id, None, "VO", f"S{i}", ExecType.ORDER_STATUS, OrdStatus.NEW))
        h.tick(ACK * 0.1)
        assert venue.status_requests == [], "asked about a request while its venue was answering others"
    h.clock += ACK  # still answering others, but this request has waited BUSY_VENUE_WAIT timeouts: asked
    h.run(c.VenueReport(second.venue, second.child_id, None, "VO", "S-last", ExecType.ORDER_STATUS, OrdStatus.NEW))
    h.tick(ACK * 0.1)
    assert [r.child_id for r in venue.status_requests] == [first.child_id]


def test_a_silent_venue_is_asked_about_its_unanswered_requests_a_few_at_a_tick(h: Harness) -> None:
    """A venue that goes silent with many requests outstanding (a mass cancel's) gets at most
    STATUS_REQUESTS_PER_TICK status requests a tick, each request asked about once, until all are."""
    from oms.decider import STATUS_REQUESTS_PER_TICK

    n = 2 * STATUS_REQUESTS_PER_TICK + 5
    children = [next(iter(h.engine.orders[h.buy(f"C{i}", 100)].children.values())) for i in range(n)]
    venue = h.venues[children[0].venue]
    assert {ch.venue for ch in children} == {venue.name}
    h.tick(ACK * 1.01)  # nothing heard from the venue for a timeout: every request is due to be asked about
    assert len(venue.status_requests) == STATUS_REQUESTS_PER_TICK
    h.tick(0.01)
    assert len(venue.status_requests) == 2 * STATUS_REQUESTS_PER_TICK
    h.tick(0.01)
    asked = [r.child_id for r in venue.status_requests]
    assert sorted(asked) == sorted(ch.child_id for ch in children), "each asked about exactly once"


def test_an_unanswered_cancel_is_refused_to_the_client_naming_the_venue(h: Harness) -> None:
    oid = h.buy("C1", 300)
    order = h.engine.orders[oid]
    (child,) = order.children.values()
    h.ack(child.venue, child.child_id)
    h.run(c.CancelOrder("S1", "X1", "C1"))
    assert order.ord_status is OrdStatus.PENDING_CANCEL
    h.tick(ACK + 0.1)
    h.tick(ACK + 0.1)
    (reject,) = h.client.rejects
    assert reject.cl_ord_id == "X1" and reject.reason is CxlRejReason.BROKER_OPTION
    assert reject.text == f"no answer from {child.venue} to the cancel"
    assert order.pending is None and order.ord_status is OrdStatus.NEW and not child.cancel_id


def test_a_quiet_clock_writes_nothing(h: Harness) -> None:
    before = h.engine.batches
    h.tick(0.25)
    h.tick(0.25)
    assert h.engine.batches == before


def test_a_restart_still_asks_about_children_in_doubt_of_finished_orders(h: Harness) -> None:
    oid = h.buy("C1", 500)
    (first,) = h.engine.orders[oid].children.values()
    h.ack(first.venue, first.child_id)
    h.run(c.VenueSessionDown("V1"), c.VenueSessionDown("V2"))
    h.tick(GRACE + 1)
    assert h.engine.orders[oid].status is OrdStatus.CANCELED and first.in_doubt
    # a new engine on the same journal: only working orders are loaded, and this one with its doubt
    again = Harness.__new__(Harness)
    again.journal, again.client, again.venues = h.journal, Client(), {"V1": StatusVenue("V1"), "V2": StatusVenue("V2")}
    again.engine = Engine(h.journal, h.engine.router, again.client, dict(again.venues),
                          EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    again.engine.recover()
    assert oid in dict.keys(again.engine.orders)
    again.run(c.VenueSessionUp(first.venue))
    assert [r.child_id for r in again.venues[first.venue].status_requests] == [first.child_id]
    again.run(c.VenueReport(first.venue, first.child_id, None, "", "S1", ExecType.ORDER_STATUS, OrdStatus.REJECTED,
                            text="unknown order"))
    assert not again.engine.orders[oid].children[first.child_id].in_doubt


def test_a_row_the_derived_tables_refuse_stalls_neither_the_engine_nor_the_projection(h: Harness) -> None:
    """Not a venue fault, the same harness: a venue ExecID already in the executions table under another
    order (a row put there by hand: its unique key). The batch is durable in the log, so it is applied
    and sent; the projection skips the conflicting row, logs it, and goes on with everything after it."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from oms.risk import RiskEngine
    from oms.risk.limits import RiskConfig
    from oms.risk_gate import RiskGateAdapter
    from oms.schema import executions_t, orders_t

    h.engine.risk = RiskGateAdapter(RiskEngine(RiskConfig(duplicate_window=1.0)), lambda symbol: Decimal("150"))
    oid = h.buy("C1", 100)
    (child,) = h.engine.orders[oid].children.values()
    h.ack(child.venue, child.child_id)
    h.journal.sync()
    with h.journal.engine.begin() as conn:
        conn.execute(executions_t.insert().values(
            exec_id="X-1", order_id="ELSEWHERE", child_id="ELSEWHERE.1", venue=child.venue, venue_exec_id="DUP",
            last_qty=Decimal(1), last_px=Decimal(1), status="ok", ts=datetime.now(UTC)))
    h.run(c.NewOrder("S1", "C2", "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(10), Decimal("149.97")),
          c.VenueReport(child.venue, child.child_id, None, "VO", "DUP", ExecType.TRADE, OrdStatus.FILLED,
                        Decimal(100), Decimal("149.97")),
          c.NewOrder("S1", "C3", "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(11), Decimal("149.97")))
    assert not h.engine._stale
    accepted = {r.cl_ord_id for r in h.client.reports if r.exec_type is ExecType.NEW}
    assert {"C1", "C2", "C3"} <= accepted
    assert h.engine.orders[oid].cum_qty == 100  # in the log and sent: applied
    h.journal.sync()  # does not raise: the conflicting row is skipped
    with h.journal.engine.connect() as conn:
        stored = {r.cl_ord_id: r.cum_qty for r in conn.execute(select(orders_t.c.cl_ord_id, orders_t.c.cum_qty))}
        dup = conn.execute(select(executions_t.c.order_id).where(executions_t.c.venue_exec_id == "DUP")).all()
    assert stored == {"C1": Decimal(100), "C2": 0, "C3": 0}
    assert [r.order_id for r in dup] == ["ELSEWHERE"]  # the hand-made row is left as it was


def test_a_child_never_acknowledged_before_a_restart_is_timed_out_after_it(h: Harness) -> None:
    oid = h.buy("C1", 300)
    (first,) = h.engine.orders[oid].children.values()  # sent, never acknowledged, then the engine stops
    again = Harness.__new__(Harness)
    again.journal, again.client, again.venues = h.journal, Client(), {"V1": StatusVenue("V1"), "V2": StatusVenue("V2")}
    again.engine = Engine(h.journal, h.engine.router, again.client, dict(again.venues),
                          EngineConfig(instance="T", symbols=frozenset({"IBM"}), venue_ack_timeout_s=ACK, tick_s=0))
    again.engine.recover()
    again.clock = time.monotonic()
    again.run(c.VenueSessionUp("V1"), c.VenueSessionUp("V2"))
    assert [r.child_id for r in again.venues[first.venue].status_requests] == [first.child_id]
    again.tick(ACK + 0.1)  # the venue never answers its status request either
    order = again.engine.orders[oid]
    assert order.children[first.child_id].in_doubt and first.venue in again.engine.suspect
    assert [ch.venue for ch in order.children.values() if not ch.done] == [
        "V2" if first.venue == "V1" else "V1"]


def test_a_request_the_engine_fails_on_is_still_answered(h: Harness) -> None:
    """A defect while handling a request (here: the reference price for the collar fails) must not leave
    the client without an answer (rules of engagement): the NewOrderSingle is Rejected, reason 99, the
    rest of the batch goes on, and the ClOrdID stays free."""
    from oms.enums import OrdRejReason
    from oms.risk import RiskEngine
    from oms.risk.limits import RiskConfig
    from oms.risk_gate import RiskGateAdapter

    def broken_reference(symbol: str) -> Decimal:
        raise RuntimeError("defect")

    h.engine.risk = RiskGateAdapter(RiskEngine(RiskConfig()), broken_reference)
    h.run(c.NewOrder("S1", "F1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(100), Decimal("149.97")),
          c.CancelOrder("S1", "X1", "NOPE", "IBM", "1"))
    (rejected,) = [r for r in h.client.reports if r.cl_ord_id == "F1"]
    assert rejected.exec_type is ExecType.REJECTED and rejected.ord_status is OrdStatus.REJECTED
    assert rejected.ord_rej_reason == OrdRejReason.OTHER and "could not be processed" in rejected.text
    assert ("S1", "F1") not in h.engine.by_cl_ord_id
    # the other command of the batch was handled as usual (an unknown order)
    assert [r.reason for r in h.client.rejects if r.cl_ord_id == "X1"] == [CxlRejReason.UNKNOWN_ORDER]


class _QuietSource:
    """A FIX edge (oms.ports.FixEdge) with nothing to say: with one, the engine thread waits
    in select rather than on its queue, so only a wake-up brings it the clock's ticks."""

    def __init__(self) -> None:
        import socket

        self.reader, self.writer = socket.socketpair()

    def fileno(self) -> int:
        return self.reader.fileno()

    def pump(self) -> None:
        pass

    def journaled(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def wait_sent(self) -> None:
        pass


def test_the_clock_reaches_an_engine_waiting_on_its_sources(tmp_path: Path) -> None:
    """Nothing else arrives after the order: the venue's silence is noticed through the ticker alone."""
    h = Harness(tmp_path)
    source = _QuietSource()
    h.engine.config = replace(h.engine.config, tick_s=0.05, venue_ack_timeout_s=0.2)
    h.engine.clock = time.monotonic  # real ticks from the engine's ticker
    h.engine.edges = [source]
    h.engine.start(wait=False)
    try:
        h.engine.wait_recovered(10)
        h.engine.submit(c.NewOrder("S1", "Q1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(10),
                                   Decimal("149.97")))
        deadline = time.monotonic() + 10
        while not h.venues["V1"].status_requests:
            assert time.monotonic() < deadline, "no tick handled: the silent venue was never asked"
            time.sleep(0.02)
    finally:
        h.engine.stop()
        source.reader.close()
        source.writer.close()


class _RecordingEdge(_QuietSource):
    """A FIX edge that notes, at each flush and each wait for its sends, how many batches the journal holds."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.calls: list[tuple[str, int]] = []

    def flush(self) -> None:
        self.calls.append(("flush", self.journal._batch))

    def wait_sent(self) -> None:
        self.calls.append(("wait", self.journal._batch))


def test_a_batch_is_handed_to_the_sessions_after_its_append_and_sent_before_the_next(tmp_path: Path) -> None:
    """The runner's side of the outbox (fix_engine.outbox): a batch's messages go to the FIX sessions after
    it is journaled (durable before visible), and the next batch is journaled only once they are sent, so
    a crash leaves at most the last batch unsent (the restart resends it)."""
    h = Harness(tmp_path)
    edge = _RecordingEdge(h.journal)
    h.engine.edges = [edge]
    first = h.journal._batch
    h.buy("E1", 10)
    h.buy("E2", 10)
    child = list(h.venues["V1"].children)[-1]
    h.ack("V1", child)
    assert h.journal._batch == first + 3
    # each batch: wait for the previous batch's sends, append, send and flush its own
    assert edge.calls == [("wait", first), ("flush", first + 1), ("wait", first + 1), ("flush", first + 2),
                          ("wait", first + 2), ("flush", first + 3)]
    assert h.client.reports and len(h.venues["V1"].children) == 2


def test_a_batch_that_sends_nothing_is_journaled_with_the_next_one(tmp_path: Path) -> None:
    """A venue's acknowledgement of a child sends nothing: the runner does not append it on its own
    (Engine.process defer=True) but with the next batch, in the order decided."""
    h = Harness(tmp_path)
    oid = h.buy("D1", 10)
    (child,) = list(h.venues["V1"].children)
    before = h.journal._batch
    assert h.engine.process([c.VenueReport("V1", child, None, "VO", f"A-{child}", ExecType.NEW, OrdStatus.NEW)],
                            defer=True) == []
    assert h.journal._batch == before and h.engine._deferred  # decided, not journaled yet
    assert h.engine.orders[oid].children[child].status is OrdStatus.NEW
    assert h.engine.process([c.NewOrder("S1", "D2", "ACC", "IBM", Side.BUY, OrdType.LIMIT, Decimal(5),
                                        Decimal("149.97"))], defer=True) == []
    assert h.journal._batch == before + 1 and not h.engine._deferred  # one append for both
    h.journal.sync()
    with h.journal.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(events_t.c.kind).order_by(events_t.c.seq))]
    assert kinds[-3:] == ["ChildAcked", "OrderAccepted", "ChildRouted"]


def test_the_runner_journals_a_deferred_batch_when_nothing_follows(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    oid = h.buy("D3", 10)
    (child,) = list(h.venues["V1"].children)
    before = h.journal._batch
    h.engine.start(wait=False)
    try:
        h.engine.wait_recovered(10)
        h.engine.submit(c.VenueReport("V1", child, None, "VO", f"A-{child}", ExecType.NEW, OrdStatus.NEW))
        deadline = time.monotonic() + 10
        while h.journal._batch == before:
            assert time.monotonic() < deadline, "the deferred acknowledgement was never journaled"
            time.sleep(0.01)
    finally:
        h.engine.stop()
    reopened = Journal.open(f"sqlite:///{tmp_path / 'j.db'}", "T")
    state = reopened.load_open()
    assert state.orders[oid].children[child].status is OrdStatus.NEW
    reopened.engine.dispose()
