"""The modules mypyc compiles (setup.py COMPILED), compiled against their own sources, in one run.

Each measure runs twice in a fresh process: once as installed (compiled) and once with
FIXOMS_PURE_PYTHON=1 (oms/compiled.py: the same modules imported from their .py files). Printed: the
best of --repeat timings of --n calls each, in microseconds per call, and the ratio.

  route resting 57 / 500   SmartRouter.route of a DAY limit 5% below the market (Cont-Kukanov rests it
                           across both venues), as bench/e2e.py's resting flow does
  route marketable 300     a DAY limit through the far touch: taken with IOCs over both venues, and
  route IOC 300            the same as an IOC
  codec.parse              a NewOrderSingle's raw string into tag -> value
  decode_client            the same message into the engine's NewOrder command (parse included)
  encode_report            an ExecutionReport into its FIX string

The books: two venues quoting 10 levels a side around 190.00, plus 7 levels of resting bids and offers
5% away, as the e2e simulators show them.

Run: .venv/bin/python bench/compiled_bench.py [--n 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOH = "\x01"
NEW_ORDER = (f"8=FIX.4.4{SOH}9=150{SOH}35=D{SOH}34=12{SOH}49=CLIENT1{SOH}52=20261207-03:00:00.000{SOH}56=FIXOMS{SOH}"
             f"11=abc-123{SOH}21=1{SOH}55=AAPL{SOH}54=1{SOH}60=20261207-03:00:00.000{SOH}38=57{SOH}40=2{SOH}"
             f"44=180.49{SOH}59=0{SOH}10=000{SOH}")


def best(fn: Callable[[], object], n: int, repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out = min(out, (time.perf_counter() - t) / n * 1e6)
    return out


def measure(n: int, repeat: int) -> dict[str, Any]:
    """In this process, as its environment imports the modules."""
    sys.path.insert(0, str(ROOT))
    from fix_engine import codec
    from fixoms import config as cfgmod
    from oms import events as ev
    from oms.enums import ExecType, OrdType, Side, TimeInForce
    from oms.model import Order
    from oms.reports import report
    from sor import router as router_module
    from sor.router import SmartRouter

    config = cfgmod.load(ROOT / "fixoms.toml")
    router = SmartRouter.from_config(dict(config.symbols), config.sor, config.venue_profiles)
    ref = D("190.00")
    for venue, off in (("VENUE-A", 0), ("VENUE-B", 1)):
        bids = [(ref - D(k + off) / 100, D(100 + 10 * k)) for k in range(1, 11)]
        bids += [(ref * D("0.95") - D(k) / 100, D(40)) for k in range(7)]
        asks = [(ref + D(k + off) / 100, D(100 + 10 * k)) for k in range(1, 11)]
        asks += [(ref * D("1.05") + D(k) / 100, D(40)) for k in range(7)]
        router.on_book(venue, "AAPL", bids, asks)
    up = {"VENUE-A", "VENUE-B"}
    seq = iter(range(1, 10**9))

    def order(qty: int, px: D, tif: TimeInForce) -> Order:
        i = next(seq)
        return Order.from_accepted(ev.OrderAccepted(f"O{i}", i, "CLIENT1", "ACC", f"c{i}", "AAPL", Side.BUY,
                                                    OrdType.LIMIT, tif, D(qty), px, None, datetime.now(UTC)))

    figures: dict[str, Any] = {"compiled": router_module.__file__.endswith(".so")}
    for name, qty, px, tif in (("route resting 57", 57, D("180.49"), TimeInForce.DAY),
                               ("route resting 500", 500, D("180.49"), TimeInForce.DAY),
                               ("route marketable 300", 300, D("190.05"), TimeInForce.DAY),
                               ("route IOC 300", 300, D("190.05"), TimeInForce.IOC)):
        # a fresh order per call (a routed order has children, and routing it again would plan less)
        orders = [order(qty, px, tif) for _ in range(n * repeat)]
        it = iter(orders)
        figures[name] = best(lambda it=it: router.route(o := next(it), o.order_qty, up), n, repeat)
    figures["codec.parse"] = best(lambda: codec.parse(NEW_ORDER), n, repeat)
    figures["decode_client"] = best(lambda: codec.decode_client(NEW_ORDER, "CLIENT1"), n, repeat)
    ack = report(order(57, D("180.49"), TimeInForce.DAY), ExecType.NEW)
    figures["encode_report"] = best(lambda: codec.encode_report(ack, codec.FIX44), n, repeat)
    return figures


def run_child(script: str, pure: bool, *args: str) -> dict[str, Any]:
    """`script --child args` in a fresh process with the sources (`pure`) or the compiled modules: the JSON
    object its last line prints. (bench/engine_cpu_bench.py runs its children with it too.)"""
    sys.path.insert(0, str(ROOT))
    from oms.compiled import environment

    out = subprocess.run([sys.executable, script, "--child", *args], env=environment(pure), cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.n, args.repeat)))
        return
    pure, compiled = (run_child(__file__, p, "--n", str(args.n), "--repeat", str(args.repeat)) for p in (True, False))
    if not compiled.pop("compiled"):
        print("the modules are not compiled here (installed with FIXOMS_PURE_PYTHON=1?): nothing to compare")
        return
    pure.pop("compiled")
    print(f"best of {args.repeat} x {args.n} calls, us per call")
    print(f"  {'':24} {'sources':>9} {'compiled':>9} {'ratio':>6}")
    for name, before in pure.items():
        after = compiled[name]
        print(f"  {name:24} {before:9.1f} {after:9.1f} {after / before:6.0%}")


if __name__ == "__main__":
    main()
