"""How far a standby trails a primary that journals N orders a second (issue 17: under 1 s at 500/s).

A primary's journal (fenced by a lease, its projector thread running, as in `fixoms run`) appends one
batch per order - an accepted order, its snapshot and its ExecutionReport - at a steady rate, while a
standby (fixoms.ha.HANode) looks at the log every poll_s as `fixoms run --standby` does. Prints what
the standby's looks found behind them: batches and the age of the oldest unread one.

    .venv/bin/python bench/ha_lag_bench.py [--rate 500] [--seconds 10] [--poll 0.25] [--url ...]

--url: a scratch database it may reset (default: one of its own, created and dropped): never a journal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e import scratch_pg  # noqa: E402  (bench/: the folder of the script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FIXOMS_BENCH_PG"),
                        help="a scratch database (default: one created for the run on 127.0.0.1 and dropped after)")
    parser.add_argument("--rate", type=float, default=500.0, help="orders (batches) a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.25, help="the standby's poll_s")
    args = parser.parse_args()
    if args.url is not None:
        run(args)
        return
    with scratch_pg(f"fixoms_bench_ha_{os.getpid()}") as args.url:
        run(args)


def run(args: argparse.Namespace) -> None:

    from sqlalchemy import text

    from fixoms import config as config_mod
    from fixoms.ha import HANode
    from oms import events as ev
    from oms.enums import ExecType, OrdType, Side, TimeInForce
    from oms.journal import Journal
    from oms.lease import Lease
    from oms.model import Order
    from oms.reports import report
    from oms.schema import make_engine

    db = make_engine(args.url)
    with db.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    journal = Journal(db, "BENCH", projector="thread")
    journal.create_schema()
    lease = Lease(db, "BENCH", "bench-primary", lease_s=600)
    assert lease.try_acquire()
    journal.lease = lease
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_mod.from_dict({"engine": {"instance": "BENCH"}, "database": {"url": args.url},
                                    "ha": {"poll_s": args.poll, "lease_s": 600, "renew_s": 1}}, Path(tmp))
        node = HANode(cfg, holder="bench-standby")
        looks: list[tuple[int, float]] = []
        done = threading.Event()

        def standby() -> None:
            while not done.is_set():
                behind = node.follow()
                looks.append((node.lag_batches, node.lag_s))
                if not behind:
                    done.wait(args.poll)

        follower = threading.Thread(target=standby, daemon=True)
        follower.start()
        n = int(args.rate * args.seconds)
        started = time.perf_counter()
        for i in range(n):
            due = started + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            accepted = ev.OrderAccepted(f"BENCH-{i}", i + 1, "CLIENT1", "ACC-1", f"C{i}", "IBM", Side.BUY,
                                        OrdType.LIMIT, TimeInForce.DAY, Decimal(100), Decimal("150.25"), None,
                                        datetime.now(UTC))
            order = Order.from_accepted(accepted)
            journal.append([accepted], [order], [report(order, ExecType.NEW)])
        elapsed = time.perf_counter() - started
        time.sleep(args.poll * 2)
        done.set()
        follower.join()
        node.close()
    journal.close()
    db.dispose()
    during = [lag for lag in looks if lag[0] > 0]
    ages = sorted(age for _b, age in during)
    batches = sorted(b for b, _age in during)
    print(f"{n} orders in {elapsed:.1f}s ({n / elapsed:.0f}/s); standby poll {args.poll:g}s, {len(looks)} looks")
    if ages:
        p99 = ages[min(len(ages) - 1, int(len(ages) * 0.99))]
        print(f"lag found by a look: batches median {statistics.median(batches):.0f}, max {batches[-1]}; "
              f"oldest unread batch's age median {statistics.median(ages) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {ages[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
