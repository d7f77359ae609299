"""Cost of the full pre-trade check set per order, against trivial baselines.

The account under test has 999 open orders in the symbol (one short of the default 1,000 open-order
limit), filled positions in several symbols, and every limit set, so each check does its real work and
every order passes (the full set runs). The clock is synthetic and advances 11 ms per order: ~91
orders in each session's one-second rate window, and the duplicate window always holds ~91 orders.

Run: .venv/bin/python bench/risk_bench.py [--orders N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oms.commands import NewOrder  # noqa: E402
from oms.enums import OrdType, Side  # noqa: E402
from oms.risk import OrderView, RiskConfig, RiskEngine, RiskLimits  # noqa: E402
from oms.validation import Refusal, validate_new  # noqa: E402

TARGET_P50_US = 20.0
ACCOUNT = "ACC-1"
SYMBOL = "XYZ"
REF = Decimal("100")


class SyntheticClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def build() -> tuple[RiskEngine, SyntheticClock]:
    clock = SyntheticClock()
    limits = RiskLimits(
        credit_limit=Decimal(10**12),
        max_position=Decimal(10**9),
        max_gross_position=Decimal(10**10),
        min_price=Decimal("0.01"),
        max_price=Decimal(10**6),
        restricted=frozenset({"BAD1", "BAD2"}),
    )
    config = RiskConfig(accounts={ACCOUNT: limits}, restricted=frozenset(f"R{i}" for i in range(100)))
    risk = RiskEngine(config, clock=clock)
    for i in range(999):
        side = Side.BUY if i % 2 else Side.SELL
        v = OrderView(f"OPEN-{i}", "S1", ACCOUNT, SYMBOL, side, OrdType.LIMIT, Decimal(100 + i % 7),
                      Decimal("99.5") + Decimal(i % 10) / 10)
        risk.on_accepted(v)
    for j in range(20):
        v = OrderView(f"FILLED-{j}", "S1", ACCOUNT, f"SYM{j}", Side.BUY, OrdType.LIMIT, Decimal(500), Decimal(50))
        risk.on_accepted(v)
        risk.on_fill(v, Decimal(500), Decimal(50))
    assert risk.exposure.symbol(ACCOUNT, SYMBOL).open_orders == 999
    return risk, clock


def measure(fn: Callable[[int], object], n: int) -> list[float]:
    """Per-call wall time in microseconds."""
    out = [0.0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        fn(i)
        out[i] = (clock() - start) / 1000
    return out


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=50_000)
    args = parser.parse_args()
    n = args.orders

    risk, clock = build()
    # Distinct content per order (qty and price cycle with coprime periods), so none is a duplicate.
    views = [
        OrderView(f"N{i}", "S1", ACCOUNT, SYMBOL, Side.BUY if i % 2 else Side.SELL, OrdType.LIMIT,
                  Decimal(1 + i % 997), Decimal("95") + Decimal(i % 101) / 10)
        for i in range(n)
    ]

    def check(i: int) -> Refusal | None:
        clock.now += 0.011
        result = risk.check_new(views[i], REF)
        if result is not None:
            raise AssertionError(f"order {i} refused: {result.text}")
        return result

    current = OrderView("OPEN-1", "S1", ACCOUNT, SYMBOL, Side.BUY, OrdType.LIMIT, Decimal(101), Decimal("99.6"))
    replaces = [
        OrderView("OPEN-1", "S1", ACCOUNT, SYMBOL, Side.BUY, OrdType.LIMIT, Decimal(101 + i % 50),
                  Decimal("99.6") + Decimal(i % 13) / 100)
        for i in range(n)
    ]

    def check_replace(i: int) -> Refusal | None:
        clock.now += 0.011
        result = risk.check_replace(current, Decimal(0), replaces[i], REF)
        if result is not None:
            raise AssertionError(f"replace {i} refused: {result.text}")
        return result

    symbols = frozenset({SYMBOL, *(f"SYM{j}" for j in range(20))})
    cmds = [NewOrder("S1", f"C{i}", ACCOUNT, SYMBOL, v.side, v.ord_type, v.qty, v.price) for i, v in enumerate(views)]
    now = datetime.now(UTC)

    def validation(i: int) -> Refusal | None:
        return validate_new(cmds[i], symbols, now)

    table = {ACCOUNT: RiskLimits()}

    def trivial(i: int) -> Refusal | None:
        table.get(ACCOUNT)
        return None

    # Warm up caches and the interpreter's specialisations outside the measured runs.
    warm = min(2_000, n)
    for i in range(warm):
        validation(i)
        trivial(i)
        check(i)
        check_replace(i)
    runs = {
        "trivial (dict lookup, None)": measure(trivial, n),
        "validate_new (validation only)": measure(validation, n),
        "risk check_new (full set)": measure(check, n),
        "risk check_replace (qty/price up)": measure(check_replace, n),
    }
    base = statistics.median(runs["trivial (dict lookup, None)"])
    validation_p50 = statistics.median(runs["validate_new (validation only)"])
    print(f"pre-trade risk: {n} orders, account with 999 open orders in {SYMBOL}, all limits set")
    print(f"{'path':36} {'p50 µs':>8} {'p99 µs':>8} {'x trivial':>10} {'x validation':>13}")
    for name, samples in runs.items():
        p50 = statistics.median(samples)
        print(f"{name:36} {p50:8.2f} {pct(samples, 0.99):8.2f} {p50 / base:10.1f} {p50 / validation_p50:13.2f}")
    p50 = statistics.median(runs["risk check_new (full set)"])
    verdict = "met" if p50 <= TARGET_P50_US else "NOT met"
    print(f"target check_new p50 <= {TARGET_P50_US:g} µs: {verdict} ({p50:.2f} µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
