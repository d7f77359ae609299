"""The engine thread's CPU per order, without sockets: what bench/e2e.py's resting flow costs the thread
that owns order state, measured in one process with nothing else to share the core with.

The engine is wired as fixoms/app.py wires it (SmartRouter from the repository's fixoms.toml with its
internal venue, risk, a SQLite journal with its projector off: the projector is another process in
`fixoms run`). Both lit venues show a book like the e2e simulators'. Each order is, as on the wire:
the client's NewOrderSingle decoded from its FIX string (fix_engine.codec), one batch (validation, risk,
routing, the journal append, the client's ack and the child orders encoded as FIX strings), then each
venue's ack decoded from its FIX string and processed as a batch of its own, deferred as the runner's loop
defers a batch that sends nothing (Engine.process(defer=True): its record goes with the next append), and
with the garbage collection policy of `fixoms run` (fixoms.collector: young objects only, between batches).

Printed: CPU microseconds per order (time.process_time over --orders orders, after --warmup), for the
modules mypyc compiles as installed and with FIXOMS_PURE_PYTHON=1 (their sources), in alternating child
processes (--rounds each), with the ratio of the medians.

Run: .venv/bin/python bench/engine_cpu_bench.py [--orders 3000] [--warmup 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from compiled_bench import run_child  # noqa: E402  (bench/: the folder of the script)

SOH = "\x01"
SYMBOLS = {"AAPL": D("190.00"), "MSFT": D("410.00"), "IBM": D("150.00"), "TSLA": D("250.00")}


def new_order(k: int) -> str:
    """bench/e2e.py's resting flow: DAY limits 5% away from the reference, 1..89 shares."""
    symbol = list(SYMBOLS)[k % 4]
    ref = SYMBOLS[symbol]
    buy = (k // 4) % 2 == 0
    wiggle = D(k % 7) / 100
    px = ref * D("0.95") - wiggle if buy else ref * D("1.05") + wiggle
    return (f"8=FIX.4.4{SOH}9=0{SOH}35=D{SOH}49=CLIENT1{SOH}56=FIXOMS{SOH}11=C{k}{SOH}21=1{SOH}55={symbol}{SOH}"
            f"54={'1' if buy else '2'}{SOH}60=20261207-03:00:00.000{SOH}38={1 + k % 89}{SOH}40=2{SOH}"
            f"44={px:.2f}{SOH}59=0{SOH}10=000{SOH}")


def venue_ack(venue: str, child_id: str, qty: D, k: int) -> str:
    return (f"8=FIX.4.4{SOH}9=0{SOH}35=8{SOH}49={venue}{SOH}56=FIXOMS{SOH}6=0{SOH}11={child_id}{SOH}14=0{SOH}"
            f"17={venue}-A{k}{SOH}37={venue}-{k}{SOH}38={qty}{SOH}39=0{SOH}150=0{SOH}151={qty}{SOH}10=000{SOH}")


def measure(orders: int, warmup: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from fix_engine import codec
    from fixoms import collector
    from fixoms import config as cfgmod
    from oms import commands as c
    from oms.engine import Engine, EngineConfig
    from oms.journal import Journal
    from oms.reports import CancelReject, ExecutionReport, MassCancelReport, VenueCancel, VenueNewOrder
    from oms.risk import RiskEngine
    from oms.risk_gate import RiskGateAdapter
    from sor import router as router_module
    from sor.router import SmartRouter
    from venues.internal import InternalVenue

    tmp = Path(tempfile.mkdtemp(prefix="fixoms-cpu-"))
    # The load bench/e2e.py puts on it: its rate limits off, its open-order count above what it keeps open.
    toml = (ROOT / "fixoms.toml").read_text()
    for pattern, value in ((r"(?m)^session_submit_rate\s*=.*$", 'session_submit_rate = "none"'),
                           (r"(?m)^session_modify_rate\s*=.*$", 'session_modify_rate = "none"'),
                           (r"(?m)^max_open_orders\s*=\s*\d+", "max_open_orders = 1000000"),
                           (r"(?m)^activity_ms\s*=.*$", "activity_ms = 0")):
        toml = re.sub(pattern, value, toml)
    (tmp / "fixoms.toml").write_text(toml)
    config = cfgmod.load(tmp / "fixoms.toml")
    sent_children: list[VenueNewOrder] = []
    wire: list[str] = []

    class Client:
        def send_report(self, r: ExecutionReport) -> None:
            wire.append(codec.encode_report(r, codec.FIX44))

        def send_cancel_reject(self, r: CancelReject) -> None:
            pass

        def send_mass_cancel_report(self, r: MassCancelReport) -> None:
            pass

    class Venue:
        def __init__(self, name: str) -> None:
            self.name = name

        def send_new(self, m: VenueNewOrder) -> None:
            wire.append(codec.encode_venue_new(m, codec.FIX44))
            sent_children.append(m)

        def send_cancel(self, m: VenueCancel) -> None:
            pass

        def send_replace(self, m: object) -> None:
            pass

        def send_status_request(self, m: object) -> None:
            pass

    journal = Journal.open(f"sqlite:///{tmp / 'j.db'}", "OMS1")
    journal.projector = "off"
    journal.create_schema()
    router = SmartRouter.from_config(dict(config.symbols), config.sor, config.venue_profiles)
    venues: dict[str, Any] = {"VENUE-A": Venue("VENUE-A"), "VENUE-B": Venue("VENUE-B")}
    if router.internal_venue:
        venues[router.internal_venue] = InternalVenue(lambda cmd: None, reference=router.reference_prices,
                                                      on_book=router.on_internal_book, name=router.internal_venue)
    engine = Engine(journal, router, Client(), venues,
                    EngineConfig(instance="OMS1", symbols=frozenset(config.symbols),
                                 default_accounts=dict(config.accounts)))
    engine.risk = RiskGateAdapter(RiskEngine(config.risk), lambda symbol: SYMBOLS.get(symbol))
    engine.recover()
    for symbol, ref in SYMBOLS.items():
        for venue, off in (("VENUE-A", 0), ("VENUE-B", 1)):
            bids = [(ref - D(k + off) / 100, D(100 + 10 * k)) for k in range(1, 6)]
            asks = [(ref + D(k + off) / 100, D(100 + 10 * k)) for k in range(1, 6)]
            router.on_book(venue, symbol, bids, asks)
    engine.process([c.VenueSessionUp(v) for v in venues])
    collector.enable()  # the garbage collection policy of `fixoms run`

    def idle() -> None:
        # Where the runner calls it, after each batch and before it waits for work (at this bench's rate,
        # the engine of `fixoms run` waits after each message).
        collector.housekeeping(False)
        collector.housekeeping(True)

    def one(k: int) -> None:
        sent_children.clear()
        assert engine.process([codec.decode_client(new_order(k), "CLIENT1")], defer=True) == []
        idle()
        for m in list(sent_children):
            ack = codec.decode_venue(venue_ack(m.venue, m.child_id, m.qty, k), m.venue)
            assert engine.process([ack], defer=True) == []
            idle()

    for k in range(warmup):
        one(k)
    start = time.process_time()
    for k in range(warmup, warmup + orders):
        one(k)
    cpu = time.process_time() - start
    working = sum(1 for o in engine.orders.values() if not o.is_terminal)
    journal.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    assert working == warmup + orders, f"{warmup + orders - working} orders refused or ended"
    return {"compiled": router_module.__file__.endswith(".so"), "us_per_order": cpu / orders * 1e6,
            "messages": len(wire) / (warmup + orders)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.orders, args.warmup)))
        return
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for pure in (True, False):
            runs[pure].append(run_child(__file__, pure, "--orders", str(args.orders), "--warmup", str(args.warmup)))
    if not runs[False][0]["compiled"]:
        print("the modules are not compiled here (installed with FIXOMS_PURE_PYTHON=1?): both runs were the sources")
    print(f"engine thread, resting flow, {args.orders} orders after {args.warmup} (each: its NewOrderSingle, "
          f"{runs[False][0]['messages']:.1f} FIX messages out, the venues' acks), CPU us per order:")
    med = {}
    for pure, label in ((True, "sources (FIXOMS_PURE_PYTHON=1)"), (False, "compiled (as installed)")):
        figures = [r["us_per_order"] for r in runs[pure]]
        med[pure] = statistics.median(figures)
        print(f"  {label:32} median {med[pure]:7.1f}  (runs: {', '.join(f'{x:.1f}' for x in figures)})")
    print(f"  compiled / sources: {med[False] / med[True]:.0%}")


if __name__ == "__main__":
    main()
