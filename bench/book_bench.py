"""Order book throughput: the pure-Python reference against the C book.

One seeded operation mix (70% passive adds, 25% cancels of resting orders, 5%
IOC orders that cross the spread), in a normal variant holding about a
thousand resting orders and a deep one holding about 100,000, is run through

  * the reference (``ReferenceBook.execute``),
  * the C book one Python call per operation (``Book.add``/``cancel``),
  * the C book in batches packed by Python (``Book.execute``),
  * the C book in batches packed beforehand (``Book.execute_packed``),

and ops/s, the ratio to the reference and the targets are printed.  Every
run must end in the same book and emit as many events as the reference.

    python bench/book_bench.py [--ops 1000000] [--seed 7] [--batch 65536] [--only normal|deep]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from native import (  # noqa: E402
    BUY,
    EV_FILL,
    IOC,
    SELL,
    Book,
    OpTuple,
    ReferenceBook,
    op_add,
    op_cancel,
    pack_ops,
)

MIN_PRICE = 1
MAX_PRICE = 200_000
MID = 100_000


@dataclass
class Workload:
    name: str
    target: int
    max_orders: int
    prefill: list[OpTuple]
    ops: list[OpTuple]


def make_workload(name: str, n_ops: int, target: int, spread: float, seed: int) -> Workload:
    """Generate the mix, tracking which orders rest with a scratch C book so
    that every cancel names a live order and the book stays near ``target``."""
    rnd = random.Random(seed)
    randbits, rand, randint, randrange = rnd.getrandbits, rnd.random, rnd.randint, rnd.randrange
    expo = rnd.expovariate
    max_orders = max(2 * target, 4096)
    scratch = Book(MIN_PRICE, MAX_PRICE, max_orders)
    live: list[int] = []
    where: dict[int, int] = {}
    next_id = 1

    def forget(oid: int) -> None:
        i = where.pop(oid)
        last = live.pop()
        if last != oid:
            live[i] = last
            where[last] = i

    def passive() -> OpTuple:
        nonlocal next_id
        oid = next_id
        next_id += 1
        side = randbits(1)
        off = 1 + int(expo(1.0 / spread))
        price = MID - off if side == BUY else MID + off
        op = op_add(oid, side, price, randint(1, 100))
        where[oid] = len(live)
        live.append(oid)
        return op

    prefill = [passive() for _ in range(target)]
    scratch.execute(prefill)
    ops: list[OpTuple] = []
    append = ops.append
    for _ in range(n_ops):
        x = rand()
        if x < 0.70 or not live:
            op = passive()
            scratch.add(op[4], op[1], op[5], op[6])
        elif x < 0.95:
            oid = live[randrange(len(live))]
            op = op_cancel(oid)
            forget(oid)
            scratch.cancel(oid)
        else:
            oid = next_id
            next_id += 1
            side = randbits(1)
            # Sized to eat ~9 makers on average, more when the book runs above
            # target, which is what holds it near target at this mix.
            qty = max(1, int(rnd.uniform(0.5, 1.5) * 455 * len(live) / target))
            price = MID + 5_000 if side == BUY else MID - 5_000
            op = op_add(oid, side, price, qty, IOC)
            for ev in scratch.add(oid, side, price, qty, IOC):
                if ev.kind == EV_FILL and ev.maker_leaves == 0:
                    forget(ev.maker_id)
        append(op)
    return Workload(name, target, max_orders, prefill, ops)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result
    finally:
        gc.enable()


def fingerprint(book: Any) -> tuple[object, ...]:
    return (book.order_count(), book.best_bid(), book.best_ask(), book.depth(BUY, 5), book.depth(SELL, 5))


def chunks(seq: Sequence[OpTuple], size: int) -> list[Sequence[OpTuple]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def run_reference(w: Workload) -> tuple[float, int, tuple[object, ...]]:
    book = ReferenceBook(MIN_PRICE, MAX_PRICE, w.max_orders)
    book.execute(w.prefill)
    dt, events = timed(lambda: book.execute(w.ops))
    return dt, len(events), fingerprint(book)


def run_single(w: Workload) -> tuple[float, int, tuple[object, ...]]:
    book = Book(MIN_PRICE, MAX_PRICE, w.max_orders)
    book.execute(w.prefill)
    add, cancel = book.add, book.cancel
    calls: list[tuple[Callable[..., list[Any]], tuple[int, ...]]] = []
    for op in w.ops:
        if op[0] == 3:
            calls.append((cancel, (op[4],)))
        else:
            calls.append((add, (op[4], op[1], op[5], op[6], op[2])))

    def go() -> int:
        n = 0
        for fn, args in calls:
            n += len(fn(*args))
        return n

    dt, n_events = timed(go)
    return dt, n_events, fingerprint(book)


def run_batched(w: Workload, batch: int) -> tuple[float, int, tuple[object, ...]]:
    book = Book(MIN_PRICE, MAX_PRICE, w.max_orders)
    book.execute(w.prefill)
    parts = chunks(w.ops, batch)
    execute = book.execute
    # Sized (and its pages touched) up front, as a long-lived book would be.
    book.reserve_events(2 * batch + 64)

    def go() -> int:
        return sum(len(execute(part)) for part in parts)

    dt, n_events = timed(go)
    return dt, n_events, fingerprint(book)


def run_prepacked(w: Workload, batch: int) -> tuple[float, int, tuple[object, ...]]:
    book = Book(MIN_PRICE, MAX_PRICE, w.max_orders)
    book.execute(w.prefill)
    packed = [(pack_ops(part), len(part)) for part in chunks(w.ops, batch)]
    execute_packed = book.execute_packed
    book.reserve_events(2 * batch + 64)

    def go() -> int:
        return sum(len(execute_packed(buf, n)) for buf, n in packed)

    dt, n_events = timed(go)
    return dt, n_events, fingerprint(book)


def report(w: Workload, batch: int) -> list[str]:
    n = len(w.ops)
    kinds = {"add": 0, "cancel": 0, "cross": 0}
    for op in w.ops:
        kinds["cancel" if op[0] == 3 else "cross" if op[2] == IOC else "add"] += 1
    print(
        f"\n== {w.name}: {n:,} ops ({kinds['add']:,} add / {kinds['cancel']:,} cancel / "
        f"{kinds['cross']:,} crossing), ~{w.target:,} resting, batch {batch:,}"
    )
    ref_dt, ref_events, ref_fp = run_reference(w)
    rows = [("reference (pure Python)", ref_dt, ref_events, ref_fp)]
    rows.append(("C, one call per op", *run_single(w)))
    rows.append(("C, batched, Python packing", *run_batched(w, batch)))
    rows.append(("C, batched, pre-packed", *run_prepacked(w, batch)))
    ref_rate = n / ref_dt
    rates: dict[str, float] = {}
    for label, dt, n_events, fp in rows:
        rate = n / dt
        rates[label] = rate
        same = "same result" if (n_events, fp) == (ref_events, ref_fp) else "RESULT DIFFERS"
        print(
            f"  {label:<28} {rate / 1e6:8.3f} M ops/s  {dt * 1e9 / n:8.1f} ns/op  "
            f"x{rate / ref_rate:7.1f} vs reference  {n_events:,} events  {same}"
        )
    failures = []
    for label, _, n_events, fp in rows:
        if (n_events, fp) != (ref_events, ref_fp):
            failures.append(f"{w.name}: {label} disagrees with the reference")
    single_ns = 1e9 / rates["C, one call per op"]
    packed_rate = rates["C, batched, pre-packed"]
    py_rate = rates["C, batched, Python packing"]
    if w.name == "normal":
        checks = [
            (f"batched pre-packed >= 15M ops/s ({packed_rate / 1e6:.2f}M)", packed_rate >= 15e6),
            (f"batched Python packing >= 2.5M ops/s ({py_rate / 1e6:.2f}M)", py_rate >= 2.5e6),
            (f"batched Python packing >= 5x reference (x{py_rate / ref_rate:.1f})", py_rate >= 5 * ref_rate),
            (f"one call per op <= 1 us mean ({single_ns:.0f} ns)", single_ns <= 1000),
        ]
    else:
        checks = [(f"deep batched >= 5M ops/s ({packed_rate / 1e6:.2f}M)", packed_rate >= 5e6)]
    for text, ok in checks:
        print(f"  target {'met ' if ok else 'MISSED'}: {text}")
        if not ok:
            failures.append(f"{w.name}: {text}")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=65_536)
    ap.add_argument("--only", choices=["normal", "deep"])
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, seed {args.seed}")
    failures: list[str] = []
    variants = [("normal", 1_000, 8.0), ("deep", 100_000, 400.0)]
    for name, target, spread in variants:
        if args.only and args.only != name:
            continue
        t0 = time.perf_counter()
        w = make_workload(name, args.ops, target, spread, args.seed)
        print(f"\n(generated {name} workload in {time.perf_counter() - t0:.1f}s)")
        failures += report(w, args.batch)
    if failures:
        print("\nnot met:\n  " + "\n  ".join(failures))
    else:
        print("\nall targets met")
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
