"""`fixoms orders list` on a big day: a fresh journal with --open working orders and --finished done ones,
on SQLite and (if reachable) PostgreSQL, read by the real CLI in a subprocess.

The journal's orders and children tables are filled with the engine's own row shapes: oms.model.Order
objects built with Order.from_accepted(OrderAccepted(...)), routed, acknowledged and (the finished ones)
filled through Order.apply, then written with oms.rows.order_row / child_row in bulk. Working orders are
spread through the day (every k-th order), a third of them partially filled. Then, --runs times each
(the median is printed, with the slowest):

  --open            `fixoms orders list --open`: the default, the newest 100 working orders and a footer
                    naming how many there are. Target (issue 14): <= 1 s with 10,000 open orders.
  --open --json     the same as JSON
  --open --all      every working order as a table
  --open --all --json
  list              `fixoms orders list` (every order, the default limit)
  import            `python -c "import fixoms.cli"`: what every command pays before reading anything

Times are wall-clock seconds of the whole subprocess (start-up, query, table, output to a pipe).

Run: .venv/bin/python bench/orders_list_bench.py [--open 10000] [--finished 100000] [--runs 3]
                                                 [--db sqlite,postgresql]
Everything runs in a temporary folder; PostgreSQL gets a database of its own, dropped after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from e2e import pg_admin, pg_reachable  # noqa: E402  (bench/: the folder of the script)
from sqlalchemy import insert  # noqa: E402

from oms import events as ev  # noqa: E402
from oms.enums import OrdType, Side, TimeInForce  # noqa: E402
from oms.model import Order  # noqa: E402
from oms.rows import child_row, order_row  # noqa: E402
from oms.schema import children_t, create_schema, make_engine, orders_t  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# `fixoms ...` as a subprocess: imported as fixoms.cli (not run as __main__), like the console script.
CLI = [sys.executable, "-c", "import sys; from fixoms.cli import main; sys.argv[0] = 'fixoms'; main()"]
SYMBOLS = {"AAPL": ("VENUE-A", Decimal("190.00")), "MSFT": ("VENUE-A", Decimal("410.00")),
           "IBM": ("VENUE-B", Decimal("150.00")), "TSLA": ("VENUE-B", Decimal("250.00"))}
TARGET_S = 1.0


def build_order(k: int, working: bool, ts: datetime) -> Order:
    """Order k of the day as the engine leaves it: accepted, routed to its venue, acknowledged, and
    filled (finished) or - one working order in three - partially filled."""
    names = list(SYMBOLS)
    symbol = names[k % 4]
    venue, ref = SYMBOLS[symbol]
    qty = Decimal(100 + k % 900)
    price = ref + Decimal(k % 50 - 25) / 100
    oid = f"OMS1-{k}"
    accepted = ev.OrderAccepted(oid, k, f"CLIENT{1 + k % 2}", f"ACC-{1 + k % 2}", f"C{k}", symbol,
                                Side.BUY if k % 2 else Side.SELL, OrdType.LIMIT, TimeInForce.DAY, qty, price, None,
                                ts, arrival_mid=ref)
    order = Order.from_accepted(accepted)
    child_id = order.next_child_id()
    order.apply(ev.ChildRouted(oid, child_id, venue, qty, price, OrdType.LIMIT, TimeInForce.DAY))
    order.apply(ev.ChildAcked(oid, child_id, f"{venue}-{k}"))
    fill = None if working and k % 3 else (qty // 2 if working else qty)
    if fill:
        order.apply(ev.ChildFilled(oid, child_id, venue, f"{venue}-X{k}", f"{oid}-{1 + order.report_seq}", fill,
                                   price, ts))
    return order


def populate(url: str, still_open: int, finished: int, batch: int = 5000) -> float:
    """Write the day's orders and their children; returns the seconds it took."""
    engine = make_engine(url)
    create_schema(engine)
    total = still_open + finished
    every = total / still_open if still_open else 0.0  # working orders spread through the day
    working_ks = {round(every * (i + 1)) for i in range(still_open)}
    assert len(working_ks) == still_open
    day = datetime.now(UTC).replace(hour=13, minute=30, second=0, microsecond=0)
    step = timedelta(hours=6.5) / total
    start = time.perf_counter()
    for first in range(1, total + 1, batch):
        orders = [build_order(k, k in working_ks, day + k * step) for k in range(first, min(first + batch, total + 1))]
        with engine.begin() as conn:
            conn.execute(insert(orders_t), [order_row(o, "OMS1") for o in orders])
            conn.execute(insert(children_t), [child_row(c) for o in orders for c in o.children.values()])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def write_config(tmp: Path, url: str) -> Path:
    path = tmp / "fixoms.toml"
    path.write_text(f'[engine]\ninstance = "OMS1"\nvar_dir = "{tmp / "var"}"\n\n[database]\nurl = "{url}"\n')
    return path


def timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args[3:])}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return elapsed, p.stdout + p.stderr


def check(name: str, output: str, still_open: int, finished: int) -> None:
    """What each command printed is what it should (a benchmark of a broken command measures nothing)."""
    cut = f"showing the newest 100 of {still_open:,} orders"
    expect, absent, rows = {
        "--open": (cut, None, None),
        "--open --json": (cut, None, 100),
        "--open --all": (f"{still_open:,} orders", "showing the newest", None),
        "--open --all --json": (None, "showing the newest", still_open),
        "list": (f"showing the newest 100 of {still_open + finished:,} orders", None, None),
    }[name]
    problem = None
    if expect is not None and expect not in output:
        problem = f"did not print {expect!r}"
    elif absent is not None and absent in output:
        problem = f"printed {absent!r}"
    elif rows is not None and output.count('"order_id"') != rows:
        problem = f"printed {output.count(chr(34) + 'order_id' + chr(34))} orders, expected {rows}"
    if problem:
        raise RuntimeError(f"`orders list {name}` {problem}:\n{output[-800:]}")


CASES: list[tuple[str, list[str]]] = [
    ("--open", ["orders", "list", "--open"]),
    ("--open --json", ["orders", "list", "--open", "--json"]),
    ("--open --all", ["orders", "list", "--open", "--all"]),
    ("--open --all --json", ["orders", "list", "--open", "--all", "--json"]),
    ("list", ["orders", "list"]),
]


def bench_db(db: str, url: str, tmp: Path, still_open: int, finished: int, runs: int) -> dict[str, list[float]]:
    print(f"\n{db}: filling {still_open:,} open + {finished:,} finished orders ...", flush=True)
    print(f"  filled in {populate(url, still_open, finished):.1f} s", flush=True)
    config = write_config(tmp, url)
    out: dict[str, list[float]] = {}
    for name, args in CASES:
        for _ in range(runs):
            elapsed, output = timed([*CLI, "--config", str(config), *args])
            check(name, output, still_open, finished)
            out.setdefault(name, []).append(elapsed)
    return out




def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--open", type=int, default=10_000, help="working orders (default 10,000)")
    ap.add_argument("--finished", type=int, default=100_000, help="finished orders (default 100,000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", default="sqlite,postgresql")
    a = ap.parse_args()
    if a.open < 1:
        ap.error("--open must be at least 1")

    imports = [timed([sys.executable, "-c", "import fixoms.cli"])[0] for _ in range(a.runs)]
    results: dict[str, dict[str, list[float]]] = {}
    for db in a.db.split(","):
        tmp = Path(tempfile.mkdtemp(prefix="fixoms-list-bench-"))
        pg_db = f"fixoms_list_bench_{os.getpid()}"
        try:
            if db == "sqlite":
                url = f"sqlite:///{tmp / 'journal.db'}"
            elif db == "postgresql":
                reason = pg_reachable()
                if reason:
                    print(f"\npostgresql: skipped (not reachable: {reason})")
                    continue
                pg_admin(f"CREATE DATABASE {pg_db}")
                url = PG_URL.format(db=pg_db)
            else:
                ap.error(f"unknown database {db!r} (sqlite, postgresql)")
            results[db] = bench_db(db, url, tmp, a.open, a.finished, a.runs)
        finally:
            if db == "postgresql":
                with suppress(Exception):
                    pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n`fixoms orders list` with {a.open:,} open and {a.finished:,} finished orders: wall seconds of the "
          f"subprocess, median (max) of {a.runs}")
    print(f"{'':<12} {'command':<28} {'median':>7} {'max':>7}  target")
    print(f"{'(any)':<12} {'import fixoms.cli':<28} {statistics.median(imports):7.2f} {max(imports):7.2f}")
    failed = False
    for db, figures in results.items():
        for name, times in figures.items():
            med = statistics.median(times)
            target = ""
            if name == "--open":
                ok = med <= TARGET_S
                failed |= not ok
                target = f"<= {TARGET_S:.1f} s  {'ok' if ok else 'MISSED'}"
            print(f"{db:<12} {'orders list ' + name:<28} {med:7.2f} {max(times):7.2f}  {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
