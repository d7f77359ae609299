"""SIGKILL the engine at random moments while two clients keep sending orders and cancels and the
venues keep filling; restart it each time; then check everything that must hold after crashes:

- every order a client saw acknowledged (150=0) is in the journal;
- every fill counted exactly once: each child's CumQty in the journal equals the venue's, each
  order's CumQty is the sum of its children's and never above its OrderQty;
- nothing orphaned: every order still working at a venue belongs to a parent that is still open;
- every child order a venue knows of ours is a child in the journal, with the venue's CumQty; a journal
  child the venue never got has none;
- every client's ExecutionReport sequence is valid per order: it starts with New or Rejected, a
  repeated ExecID is the same report again, CumQty never decreases and never exceeds OrderQty,
  CumQty + LeavesQty never exceeds OrderQty, nothing new after a terminal report, and the fills the
  client received add up to the journal's CumQty;
- what a restarted engine resends (the client messages of the last batch before the kill, marked
  PossResend(97)=Y) is durable: each PossResend report is one the journal has (its order, of that
  session, with that ExecID issued) or repeats one the client already got; and the clients get them:
  at least one when the engines logged a resend, never more than they logged ("resending N client
  messages" in the engine log). Nothing else carries PossResend.

The default run kills the engine 3 times per database (`FIXOMS_CRASH_KILLS` to change it); the
`slow`-marked variant kills it 20 times. The moments are random but seeded: a fixed seed by default,
`FIXOMS_CRASH_SEED` to try another; the seed is printed with every failure so a run can be repeated.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from fix_engine import codec
from fix_engine.client import FixClient, Msg
from fixoms.netutil import free_port
from oms.schema import children_t, cl_ord_ids_t, orders_t
from tests.conftest import listed, logon_fields, seed_credentials
from tests.fault.test_fuzz import write_config
from tests.fault.test_kill import Feeder, start_engine
from venues.simulator import SimulatorServer

KILLS = int(os.environ.get("FIXOMS_CRASH_KILLS", "3"))
SEED = int(os.environ.get("FIXOMS_CRASH_SEED", "20240611"))
TERMINAL = {"2", "3", "4", "8", "C"}  # Filled, DoneForDay, Canceled, Rejected, Expired
STATUS_ANSWER = "I"


class Trader(threading.Thread):
    """One client's order flow: IBM bids that the venue's other participant sells into, marketable
    IOC orders, and cancels of earlier bids. It keeps sending while the engine is down (QuickFIX
    stores what it cannot send and the engine asks for it after the restart)."""

    def __init__(self, client: FixClient, rng: random.Random, symbols: tuple[str, str]) -> None:
        super().__init__(daemon=True)
        self.client, self.rng, self.symbols = client, rng, symbols
        self.stop_event = threading.Event()
        self.bids: list[tuple[str, int]] = []
        self.sent = 0

    def run(self) -> None:
        resting, marketable = self.symbols
        while not self.stop_event.wait(0.02):
            self.sent += 1
            roll = self.rng.random()
            try:
                if roll < 0.2 and self.bids:
                    cl, qty = self.bids.pop(self.rng.randrange(len(self.bids)))
                    self.client.cancel(cl, resting, "1", qty)
                elif roll < 0.4:
                    self.client.new_order(marketable, "1", 100 + self.sent % 50, ord_type="1", tif="3")
                else:
                    qty = 100 + self.sent % 300  # distinct: the same order twice within a second is refused
                    self.bids.append((self.client.new_order(resting, "1", qty, price="150.00"), qty))
            except RuntimeError:
                pass  # not logged on: stored by QuickFIX, sent again after the gap is noticed


def crash_run(tmp_path: Path, db_url: str, kills: int, seed: int) -> None:
    try:
        _crash_run(tmp_path, db_url, kills, seed)
    except BaseException as exc:  # assertions name the seed; anything else gets it too
        exc.add_note(f"crash run with FIXOMS_CRASH_SEED={seed}, {kills} kills")
        raise


def _crash_run(tmp_path: Path, db_url: str, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    venue_ports = {"VENUE-A": free_port(), "VENUE-B": free_port()}
    acceptor = free_port()
    sims = {n: SimulatorServer(n, p, tmp_path / "venues" / n, i + 1, listed(n))
            for i, (n, p) in enumerate(venue_ports.items())}
    for s in sims.values():
        s.start()
    config = write_config(tmp_path, acceptor, venue_ports, db_url)
    seed_credentials(db_url)
    proc = start_engine(config, acceptor)
    clients = [
        FixClient("CLIENT1", acceptor, tmp_path, codec.FIX44, logon_fields=logon_fields("CLIENT1")).start(wait=20),
        FixClient("CLIENT2", acceptor, tmp_path, codec.FIX42, logon_fields=[]).start(wait=20),
    ]
    # IBM rests at VENUE-B and is filled by the feeder; AAPL/MSFT trade at once against VENUE-A's book
    traders = [Trader(clients[0], random.Random(seed + 1), ("IBM", "AAPL")),
               Trader(clients[1], random.Random(seed + 2), ("IBM", "MSFT"))]
    feeder = Feeder(sims["VENUE-B"], "IBM", qty=40, every=0.02)
    try:
        for t in traders:
            t.start()
        feeder.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(rng.uniform(0.0, 0.5))  # the venue keeps filling and the clients keep sending
            proc = start_engine(config, acceptor)
            for c in clients:
                assert c.app.logon_event.wait(30), f"{c.comp_id} did not log on again (seed {seed})"
        time.sleep(rng.uniform(0.5, 1.5))
        for t in traders:
            t.stop_event.set()
            t.join()
        feeder.stop_event.set()
        feeder.join()
        time.sleep(2.0)  # let what is in flight settle
        for c in clients:
            c.drain()
            for cl in {m[codec.CL_ORD_ID] for m in c.received if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT
                       and m.get(codec.EXEC_TYPE) == "0"}:
                c.status(cl, "IBM", "1")  # the answer carries the final CumQty; any symbol names it
        for c in clients:
            c.drain(2.0)
    finally:
        for t in traders:
            t.stop_event.set()
        feeder.stop_event.set()
        for c in clients:
            c.stop(force=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        for s in sims.values():
            s.stop()

    db = create_engine(db_url)
    with db.connect() as conn:
        orders = {r.order_id: r for r in conn.execute(select(orders_t))}
        known = {(r.session, r.cl_ord_id) for r in conn.execute(select(cl_ord_ids_t))}  # every ClOrdID of a chain
        children = list(conn.execute(select(children_t)))
    db.dispose()
    where = f"(seed {seed}, {kills} kills)"

    # every fill exactly once, no overfill
    cum_by_order: dict[str, Decimal] = defaultdict(Decimal)
    venue_children = {}
    for sim in sims.values():
        for o in sim.app.orders.values():
            if o.session == "FIXOMS":
                venue_children[o.cl_ord_id] = o
    journal_children = {ch.child_id: ch for ch in children}
    assert venue_children, f"no child order reached a venue: the run proved nothing {where}"
    for cl, vo in venue_children.items():  # every order the venue has from us is a journal child
        ch = journal_children.get(cl)
        assert ch is not None, f"venue order {cl} (CumQty {vo.cum}) has no child in the journal {where}"
        assert ch.cum_qty == vo.cum, f"child {cl}: CumQty {ch.cum_qty} in the journal, {vo.cum} at the venue {where}"
    for ch in children:
        if ch.child_id not in venue_children:  # never reached the venue (or refused there): nothing filled
            assert ch.cum_qty == 0, f"child {ch.child_id}: CumQty {ch.cum_qty}, unknown at the venue {where}"
        cum_by_order[ch.order_id] += ch.cum_qty
    for row in orders.values():
        assert row.cum_qty <= row.order_qty, f"overfill {row.order_id} {where}"
        assert row.cum_qty == cum_by_order[row.order_id], f"{row.order_id}: CumQty vs its children {where}"
    # nothing orphaned at the venues
    child_parent = {ch.child_id: ch.order_id for ch in children}
    for cl, vo in venue_children.items():
        if vo.status.value in ("0", "1"):
            parent = orders.get(child_parent.get(cl, ""))
            assert parent is not None and parent.status not in TERMINAL, \
                f"venue order {cl} still working for a finished or unknown parent {where}"

    filled = Decimal(0)
    resent = 0
    logged = sum(int(n) for n in re.findall(r"resending (\d+) client messages", (tmp_path / "engine.log").read_text()))
    for c in clients:
        session = c.comp_id
        reports = [m for m in c.received if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT]
        acked = {m[codec.CL_ORD_ID] for m in reports if m.get(codec.EXEC_TYPE) == "0"}
        missing = [cl for cl in acked if (session, cl) not in known]
        assert not missing, f"{session}: acknowledged orders not in the journal: {missing[:5]} {where}"
        per_order: dict[str, list[Msg]] = defaultdict(list)
        for m in reports:
            if m.get(codec.ORDER_ID, "NONE") != "NONE":
                per_order[m[codec.ORDER_ID]].append(m)
        for order_id, msgs in per_order.items():
            journaled = orders.get(order_id)
            assert journaled is not None and journaled.session == session, f"{session}: report for {order_id} {where}"
            check_sequence(order_id, msgs, journaled.cum_qty, where)
            filled += journaled.cum_qty
        resent += check_resent(session, c.received, orders, known, where)
    assert filled > 0, f"nothing was filled: the run proved nothing {where}"
    # A restart resends the last batch's client messages (the engine logs how many): they reach the client
    # (stored by QuickFIX while the session is down), and nothing else is marked PossResend.
    assert resent <= logged, f"{resent} messages with PossResend received, the engines resent {logged} {where}"
    assert resent > 0 or logged == 0, f"the engines resent {logged} messages, no client got one {where}"
    print(f"crash run {where}: {sum(t.sent for t in traders)} requests sent, {len(orders)} orders journaled "
          f"({sum(1 for r in orders.values() if r.status in TERMINAL)} finished), {filled} shares filled, "
          f"{len(children)} children, {resent} messages resent with PossResend after restarts "
          f"({logged} resent by the engines)")


def check_resent(session: str, received: list[Msg], orders: dict[str, Any], known: set[tuple[str, str]],
                 where: str) -> int:
    """The client messages received with PossResend=Y: each ExecutionReport is one the journal has - its
    order is this session's and the ExecID was issued for it (OrderID-n with n up to the order's report
    counter; 0 for a status answer) - or the same report again, ExecID already received. A refusal
    without an order names a ClOrdID the journal knows, or was received before. Returns their number."""
    seen: set[str] = set()
    count = 0
    for m in received:
        msg_type = m.get(codec.MSG_TYPE)
        if msg_type not in (codec.EXECUTION_REPORT, codec.CANCEL_REJECT, codec.MASS_CANCEL_REPORT):
            continue
        exec_id = m.get(codec.EXEC_ID, "")
        if m.get(codec.POSS_RESEND) == "Y":
            count += 1
            if msg_type == codec.EXECUTION_REPORT and exec_id not in seen:
                order_id = m.get(codec.ORDER_ID, "NONE")
                if order_id == "NONE":
                    assert (session, m.get(codec.CL_ORD_ID, "")) in known, \
                        f"{session}: resent refusal {exec_id} for a ClOrdID the journal does not know {where}"
                else:
                    row = orders.get(order_id)
                    assert row is not None and row.session == session, \
                        f"{session}: resent report {exec_id} of {order_id}, not in the journal {where}"
                    issued = re.fullmatch(rf"{re.escape(order_id)}-(\d+)", exec_id)
                    assert exec_id == "0" or (issued is not None and int(issued.group(1)) <= row.report_seq), \
                        f"{session}: resent report {exec_id} of {order_id} was never issued " \
                        f"(report counter {row.report_seq}) {where}"
        if exec_id:
            seen.add(exec_id)
    return count


def check_sequence(order_id: str, msgs: list[Msg], journal_cum: Decimal, where: str) -> None:
    seen: dict[str, Msg] = {}
    flow: list[Msg] = []
    for m in msgs:
        exec_id = m[codec.EXEC_ID]
        if exec_id in seen:  # the same report again (PossResend after a restart): identical content
            first = seen[exec_id]
            for tag in (codec.EXEC_TYPE, codec.ORD_STATUS, codec.CUM_QTY, codec.LEAVES_QTY):
                assert first.get(tag) == m.get(tag), f"{order_id}: ExecID {exec_id} reused for another report {where}"
            continue
        seen[exec_id] = m
        if m.get(codec.EXEC_TYPE) != STATUS_ANSWER and m.get(20) != "3":  # FIX 4.2 status: ExecTransType 3
            flow.append(m)
    assert flow, f"{order_id}: only status answers {where}"
    assert flow[0][codec.EXEC_TYPE] in ("0", "8"), f"{order_id}: first report {flow[0]} {where}"
    cum = Decimal(0)
    fills = Decimal(0)
    done = False
    for m in flow:
        assert not done, f"{order_id}: report after a terminal one: {m} {where}"
        qty, new_cum, leaves = (Decimal(m[codec.ORDER_QTY]), Decimal(m[codec.CUM_QTY]), Decimal(m[codec.LEAVES_QTY]))
        assert cum <= new_cum <= qty, f"{order_id}: CumQty {cum} -> {new_cum} of {qty} {where}"
        assert new_cum + leaves <= qty, f"{order_id}: CumQty {new_cum} + LeavesQty {leaves} > {qty} {where}"
        if m[codec.EXEC_TYPE] in ("F", "1", "2"):  # FIX 4.4 Trade; FIX 4.2 Partial/Fill
            fills += Decimal(m[codec.LAST_QTY])
            assert fills == new_cum, f"{order_id}: fills {fills} vs CumQty {new_cum} {where}"
        cum = new_cum
        if m[codec.ORD_STATUS] in TERMINAL:
            assert leaves == 0, f"{order_id}: terminal with LeavesQty {leaves} {where}"
            done = True
    assert fills == journal_cum, f"{order_id}: client got fills for {fills}, journal has {journal_cum} {where}"


def test_sigkill_at_random_moments_under_load(tmp_path: Path, db_url: str) -> None:
    crash_run(tmp_path, db_url, KILLS, SEED)


@pytest.mark.slow  # skipped unless asked for: tests/conftest.py
@pytest.mark.timeout(1800)
def test_sigkill_at_random_moments_under_load_long(tmp_path: Path, db_url: str) -> None:
    crash_run(tmp_path, db_url, max(KILLS, 20), SEED)
