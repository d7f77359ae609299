"""The journal's append under a steady order rate: what every batch waits for before anything is sent.

One batch per order, as the engine appends them at moderate rates (each new order its own batch): the
order's OrderAccepted and ChildRouted events, its snapshot, the client's NewOrderSingle in, the ack and the
child order out. Appended with `Journal.append` at --rate batches/s (open loop: batch i is due at
t0 + i/rate) for --batches, on SQLite and PostgreSQL, in two modes, one after the other in this run:

  off       no projector: the log alone (the baseline: what the append costs by itself)
  process   the projector process the engine runs (`[journal] projector = "process"`) deriving the
            tables meanwhile: on SQLite its passes hold the database's write lock, which appends wait for

Printed per database and mode: the append's latency p50/p99/p99.9/max (ms), this process's CPU per batch
(building the batch and appending it) and the projector process's CPU per batch. Issue 14's target is
an ack p99 <= 5 ms at 500 orders/s, so the append's own p99 must be well under that.

Run: .venv/bin/python bench/journal_bench.py [--rate 500] [--batches 5000] [--db sqlite,postgresql]
Everything runs in a temporary folder; PostgreSQL gets a database of its own, dropped after.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from e2e import scratch_pg  # noqa: E402  (bench/: the folder of the script)

from oms import commands as c  # noqa: E402
from oms import events as ev  # noqa: E402
from oms.enums import ExecType, OrdType, Side, TimeInForce  # noqa: E402
from oms.journal import Journal  # noqa: E402
from oms.model import Order  # noqa: E402
from oms.reports import report, venue_new  # noqa: E402
from oms.schema import make_engine  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(url: str, mode: str, rate: float, batches: int) -> dict[str, float]:
    journal = Journal(make_engine(url), "OMS1", projector=mode)
    journal.create_schema()
    ts = datetime.now(UTC)
    price, qty = Decimal("150.25"), Decimal(100)
    latencies: list[float] = []
    kids0 = children_cpu()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for k in range(1, batches + 1):
        wait = t0 + k / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        oid = f"OMS1-{k}"
        accepted = ev.OrderAccepted(oid, k, "CLIENT1", "ACC-1", f"C{k}", "IBM", Side.BUY, OrdType.LIMIT,
                                    TimeInForce.DAY, qty, price, None, ts, arrival_mid=price)
        order = Order.from_accepted(accepted)
        child_id = order.next_child_id()
        routed = ev.ChildRouted(oid, child_id, "VENUE-A", qty, price, OrdType.LIMIT, TimeInForce.DAY)
        order.apply(routed)
        ack = report(order, ExecType.NEW)
        outbound = [ack, venue_new(order, order.children[child_id])]
        inbound = [c.NewOrder("CLIENT1", f"C{k}", "ACC-1", "IBM", Side.BUY, OrdType.LIMIT, qty, price)]
        started = time.perf_counter()
        journal.append([accepted, routed], [order], [ack], inbound=inbound, outbound=outbound)
        latencies.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu0
    if mode != "off":
        journal.close()  # the projector process makes its last pass and exits: its CPU is then counted
    journal.engine.dispose()
    latencies.sort()

    def q(p: float) -> float:
        return 1e3 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"p50": q(0.5), "p99": q(0.99), "p99.9": q(0.999), "max": 1e3 * latencies[-1],
            "cpu_us": 1e6 * cpu / batches, "projector_us": 1e6 * (children_cpu() - kids0) / batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"journal append, one order a batch, {args.batches} batches at {args.rate:.0f}/s; "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    print(f"{'db':<11}{'projector':<10}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>8}   {'cpu/batch':>10}"
          f"{'projector/batch':>17}")
    with tempfile.TemporaryDirectory(prefix="fixoms-journal-") as tmp:
        for db in args.db.split(","):
            for mode in ("off", "process"):
                if db == "sqlite":
                    r = run(f"sqlite:///{tmp}/{mode}.db", mode, args.rate, args.batches)
                else:
                    with scratch_pg(f"fixoms_jbench_{os.getpid()}_{mode}") as url:
                        r = run(url, mode, args.rate, args.batches)
                print(f"{db:<11}{mode:<10}{r['p50']:>8.3f}{r['p99']:>8.3f}{r['p99.9']:>8.3f}{r['max']:>8.1f}"
                      f"   {r['cpu_us']:>7.0f} us{r['projector_us']:>14.0f} us", flush=True)
    print("latencies in ms; cpu/batch: this process (building the batch and appending it)")


if __name__ == "__main__":
    main()
