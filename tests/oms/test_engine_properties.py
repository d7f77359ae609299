"""Random sequences of client requests and venue events against the engine (no sockets), checking the
invariants a client relies on after every step:

- CumQty <= OrderQty, and CumQty + LeavesQty = OrderQty while the order works;
- nothing but a bust/correction or a status answer after a terminal report;
- the pending status wins while a cancel/replace is outstanding (Appendix D precedence);
- no overfill ever reaches a client, whatever the venue sends;
- the journal replays to the same state (restart = same orders).

The engine runs with its real journal (SQLite file); the client and venue sides are the engine's
ports implemented in memory, so the test decides what the venue does and when.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oms import commands as c
from oms.engine import Engine, EngineConfig
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.journal import Journal
from oms.reports import CancelReject, ExecutionReport, MassCancelReport, VenueCancel, VenueNewOrder
from sor.static import StaticRouter

TERMINAL = {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
AFTER_TERMINAL_OK = {ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT, ExecType.ORDER_STATUS}


class Client:
    """The ClientGateway port, collecting what the engine sends."""

    def __init__(self) -> None:
        self.reports: list[ExecutionReport] = []
        self.rejects: list[CancelReject] = []

    def send_report(self, report: ExecutionReport) -> None:
        self.reports.append(report)

    def send_cancel_reject(self, reject: CancelReject) -> None:
        self.rejects.append(reject)

    def send_mass_cancel_report(self, report: MassCancelReport) -> None:
        pass


class Venue:
    """The VenueConnector port: records child orders and cancels; the test plays the venue's part."""

    name = "V"

    def __init__(self) -> None:
        self.children: dict[str, dict[str, object]] = {}
        self.cancels: list[VenueCancel] = []

    def send_new(self, msg: VenueNewOrder) -> None:
        self.children[msg.child_id] = {"qty": msg.qty, "cum": Decimal(0), "open": True, "fills": []}

    def send_cancel(self, msg: VenueCancel) -> None:
        self.cancels.append(msg)

    def send_status_request(self, msg: object) -> None:
        pass


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.tmp.name) / 'j.db'}"
        self.journal = Journal.open(url, "T")
        self.journal.create_schema()
        self.client = Client()
        self.venue = Venue()
        self.engine = Engine(self.journal, StaticRouter({"AAA": "V"}), self.client, {"V": self.venue},
                             EngineConfig(instance="T", symbols=frozenset({"AAA"})))
        self.engine.recover()
        self.engine.venues_up.add("V")
        self.ids = itertools.count(1)
        self.cl_ord_ids: list[str] = []
        self.exec_ids = itertools.count(1)

    def teardown(self) -> None:
        self.journal.engine.dispose()
        self.tmp.cleanup()

    def run(self, *commands: object) -> None:
        retry = self.engine.process(list(commands))
        assert retry == []

    # --- client ---------------------------------------------------------------------------------
    @rule(qty=st.integers(1, 1000), side=st.sampled_from([Side.BUY, Side.SELL]),
          ord_type=st.sampled_from([OrdType.LIMIT, OrdType.MARKET]),
          tif=st.sampled_from([TimeInForce.DAY, TimeInForce.IOC]))
    def new_order(self, qty: int, side: Side, ord_type: OrdType, tif: TimeInForce) -> None:
        cl = f"C{next(self.ids)}"
        self.cl_ord_ids.append(cl)
        price = Decimal("10.00") if ord_type is OrdType.LIMIT else None
        self.run(c.NewOrder("S1", cl, "ACC", "AAA", side, ord_type, Decimal(qty), price, time_in_force=tif))

    def _current(self, i: int) -> str | None:
        orders = list(self.engine.orders.values())
        if not orders:
            return None
        return orders[i % len(orders)].cl_ord_id

    @precondition(lambda self: self.engine.orders)
    @rule(i=st.integers(0, 50))
    def cancel(self, i: int) -> None:
        orig = self._current(i)
        assert orig is not None
        self.run(c.CancelOrder("S1", f"X{next(self.ids)}", orig))

    @precondition(lambda self: self.engine.orders)
    @rule(i=st.integers(0, 50), qty=st.integers(1, 1200))
    def replace(self, i: int, qty: int) -> None:
        order = list(self.engine.orders.values())[i % len(self.engine.orders)]
        if order.side is None:
            return
        self.run(c.ReplaceOrder("S1", f"R{next(self.ids)}", order.cl_ord_id, "AAA", order.side, OrdType.LIMIT,
                                Decimal(qty), Decimal("10.00")))

    # --- venue ----------------------------------------------------------------------------------
    def _open_child(self, i: int) -> str | None:
        open_children = [cid for cid, ch in self.venue.children.items() if ch["open"]]
        return open_children[i % len(open_children)] if open_children else None

    @rule(i=st.integers(0, 50), frac=st.floats(0.05, 1.3))
    def venue_fill(self, i: int, frac: float) -> None:
        cid = self._open_child(i)
        if cid is None:
            return
        ch = self.venue.children[cid]
        qty, cum = ch["qty"], ch["cum"]
        assert isinstance(qty, Decimal) and isinstance(cum, Decimal)
        # frac > 1 makes the venue overfill: the engine must clamp it
        last = max(Decimal(1), (qty * Decimal(str(frac))).to_integral_value())
        ch["cum"] = cum + last
        exec_id = f"E{next(self.exec_ids)}"
        ch["fills"].append(exec_id)  # type: ignore[attr-defined]
        status = OrdStatus.FILLED if cum + last >= qty else OrdStatus.PARTIALLY_FILLED
        if status is OrdStatus.FILLED:
            ch["open"] = False
        self.run(c.VenueReport("V", cid, None, "VO", exec_id, ExecType.TRADE, status, last, Decimal("10.00")))

    @rule(i=st.integers(0, 50), rejected=st.booleans())
    def venue_done(self, i: int, rejected: bool) -> None:
        cid = self._open_child(i)
        if cid is None:
            return
        self.venue.children[cid]["open"] = False
        et, status = (ExecType.REJECTED, OrdStatus.REJECTED) if rejected else (ExecType.CANCELED, OrdStatus.CANCELED)
        self.run(c.VenueReport("V", cid, None, "VO", f"E{next(self.exec_ids)}", et, status))

    @rule(i=st.integers(0, 50))
    def venue_refuses_cancel(self, i: int) -> None:
        cid = self._open_child(i)
        if cid is None:
            return
        self.run(c.VenueCancelReject("V", f"{cid}~x", cid, OrdStatus.NEW, "too late"))

    @rule(i=st.integers(0, 50))
    def duplicate_fill(self, i: int) -> None:
        fills = [(cid, e) for cid, ch in self.venue.children.items() for e in ch["fills"]]  # type: ignore[attr-defined]
        if not fills:
            return
        cid, exec_id = fills[i % len(fills)]
        self.run(c.VenueReport("V", cid, None, "VO", exec_id, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED,
                               Decimal(1), Decimal("10.00")))

    @rule(i=st.integers(0, 50))
    def bust(self, i: int) -> None:
        fills = [(cid, e) for cid, ch in self.venue.children.items() for e in ch["fills"]]  # type: ignore[attr-defined]
        if not fills:
            return
        cid, exec_id = fills[i % len(fills)]
        self.venue.children[cid]["fills"].remove(exec_id)  # type: ignore[attr-defined]
        self.run(c.VenueReport("V", cid, None, "VO", f"B{next(self.exec_ids)}", ExecType.TRADE_CANCEL,
                               OrdStatus.CANCELED, exec_ref_id=exec_id))

    # --- venue faults (the engine's clock is driven here: Tick far ahead) -------------------------
    @rule()
    def venue_drops_for_good(self) -> None:
        # Past the grace period: open children go in doubt; the venue may still fill them (late fills).
        self.run(c.VenueSessionDown("V"), c.Tick(time.monotonic() + 3600))

    @rule()
    def venue_returns(self) -> None:
        self.run(c.VenueSessionUp("V"))

    @rule()
    def venue_stays_silent(self) -> None:
        # Twice past the ack timeout: a status request, then unanswered children go in doubt and
        # unanswered cancels are refused to the client.
        now = time.monotonic()
        self.run(c.Tick(now + 60))
        self.run(c.Tick(now + 120))

    # --- what must always hold -------------------------------------------------------------------
    @invariant()
    def client_view_is_consistent(self) -> None:
        done: set[str] = set()
        for r in self.client.reports:
            if r.order_id == "NONE":
                continue
            assert r.cum_qty <= r.order_qty, r
            assert r.cum_qty >= 0 and r.leaves_qty >= 0, r
            if r.ord_status not in TERMINAL:
                assert r.cum_qty + r.leaves_qty == r.order_qty, r
            if r.order_id in done:
                assert r.exec_type in AFTER_TERMINAL_OK, f"report after terminal: {r}"
            if r.ord_status in TERMINAL and r.exec_type not in AFTER_TERMINAL_OK:
                done.add(r.order_id)
            elif r.exec_type in (ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT) and r.ord_status not in TERMINAL:
                done.discard(r.order_id)  # a bust reopens a filled order

    @invariant()
    def orders_hold_their_invariants(self) -> None:
        for order in self.engine.orders.values():
            order.check()
            if order.pending is not None and not order.is_terminal:
                assert order.ord_status is order.pending

    @invariant()
    def journal_replays_to_the_same_state(self) -> None:
        from oms.rows import order_row

        before = {oid: (order_row(o, "T"), {k: vars_(ch) for k, ch in o.children.items()})
                  for oid, o in self.engine.orders.items()}
        state = self.journal.load()
        after = {oid: (order_row(o, "T"), {k: vars_(ch) for k, ch in o.children.items()})
                 for oid, o in state.orders.items()}
        for oid in before:
            b, a = before[oid], after[oid]
            assert {k: v for k, v in b[0].items() if k not in ("updated_at", "created_at")} == {
                k: v for k, v in a[0].items() if k not in ("updated_at", "created_at")}
            assert b[1] == a[1]


def vars_(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


EngineMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_engine_invariants = EngineMachine.TestCase
