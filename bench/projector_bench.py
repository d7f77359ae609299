"""The projector's CPU per order: one log, projected by this checkout and (with --against DIR) by another, in
alternating child processes of the same run.

The log is real: bench/engine_cpu_bench.py's resting flow (each order's NewOrderSingle, routed to two venues,
their acks) runs once with its journal's projector off, and the journal (SQLite, both files) is kept. Each
round copies it and runs `Journal.catch_up()` over the whole log in a fresh process - read, decode, rows,
events' JSON, audit summaries and chain, inserts, commits, as the projector process does in passes of
PASS_RECORDS - with the projector process's garbage collection (oms.projector_process.PassCollector), once
per checkout. The other checkout runs with this checkout's .venv (its compiled modules are not used: the
projector's code is not compiled). Its schema must be the same as this one's (the log is written here).

Printed: CPU us per order of each round (time.process_time around catch_up), the medians, and their ratio.

Run: .venv/bin/python bench/projector_bench.py [--against DIR] [--orders 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("j.db", "j.db-log")


def write_log(folder: Path, orders: int) -> None:
    """bench/engine_cpu_bench.py's flow, its journal (projector off) copied to `folder`."""
    sys.path.insert(0, str(ROOT / "bench"))
    import engine_cpu_bench

    made: list[str] = []
    mkdtemp, rmtree = tempfile.mkdtemp, shutil.rmtree

    def remembered(*args: object, **kwargs: object) -> str:
        made.append(mkdtemp(*args, **kwargs))  # type: ignore[call-overload]
        return made[-1]

    tempfile.mkdtemp, shutil.rmtree = remembered, lambda *a, **k: None  # type: ignore[assignment]
    try:
        engine_cpu_bench.measure(orders, 0)
    finally:
        tempfile.mkdtemp, shutil.rmtree = mkdtemp, rmtree  # type: ignore[assignment]
    (source,) = made
    for name in FILES:  # a consistent copy of both files (WAL included)
        with sqlite3.connect(f"{source}/{name}") as src, sqlite3.connect(folder / name) as dst:
            src.backup(dst)
    shutil.rmtree(source, ignore_errors=True)


def child(log: Path, orders: int) -> float:
    """In a fresh process whose sys.path starts with the checkout to measure: one catch_up over a copy."""
    from oms.journal import Journal
    from oms.projector_process import PassCollector

    run = Path(tempfile.mkdtemp(prefix="fixoms-proj-"))
    try:
        for name in FILES:
            shutil.copy(log / name, run / name)
        journal = Journal.open(f"sqlite:///{run / 'j.db'}", "OMS1")
        journal.projector = "off"
        collector = PassCollector()
        start = time.process_time()
        journal.catch_up()
        collector.after_pass()
        cpu = time.process_time() - start
        journal.engine.dispose()
        return cpu / orders * 1e6
    finally:
        shutil.rmtree(run, ignore_errors=True)


def measure_in(checkout: Path, log: Path, orders: int) -> float:
    code = (f"import sys, json; sys.path.insert(0, {str(checkout)!r}); sys.path.insert(1, {str(ROOT / 'bench')!r}); "
            f"import projector_bench as b; print(json.dumps(b.child(__import__('pathlib').Path({str(log)!r}), "
            f"{orders})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to project the same log with (the baseline)")
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.against is not None and not (args.against / "oms" / "journal.py").exists():
        sys.exit(f"{args.against}: not a fixoms checkout")
    work = Path(tempfile.mkdtemp(prefix="fixoms-projbench-"))
    try:
        write_log(work, args.orders)
        checkouts = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
        figures: dict[str, list[float]] = {k: [] for k in checkouts}
        for _ in range(args.rounds):
            for key, checkout in checkouts.items():
                figures[key].append(measure_in(checkout, work, args.orders))
        print(f"projector pass over {args.orders} resting orders' log (bench/engine_cpu_bench.py's flow), "
              f"CPU us per order, {args.rounds} alternating rounds")
        med = {k: statistics.median(v) for k, v in figures.items()}
        for key, checkout in checkouts.items():
            runs = ", ".join(f"{x:.1f}" for x in figures[key])
            print(f"  {key:8} {str(checkout):40} median {med[key]:7.1f}  (runs: {runs})")
        if "against" in med:
            print(f"  this / against: {med['this'] / med['against']:.0%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
