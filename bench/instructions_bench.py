"""The engine thread's cost per order in instructions, not seconds: bench/engine_cpu_bench.py's resting flow
(decode, decide, route, journal append, encode; no sockets) under valgrind's callgrind, which counts the
instructions the process executes. The count is the same from one run to the next whatever else the machine
does, where the CPU time of the same bench moves by 10-30% here (and more with another process on the
other core): a change of a few percent shows as such.

Per checkout: the bench's child at --small and at --large orders (no warm-up), and (large - small) /
(large - small orders) instructions per order, so the start (imports, schema, the C book) drops out. With
--against DIR (another checkout of fixoms, e.g. `git worktree add /tmp/base HEAD~3` with its compiled modules
built or copied in: setup.py COMPILED), that checkout is counted the same way, in the same run, with this
checkout's .venv, and the ratio printed. Both counts run at once (one per core): the counts do not depend on it.

Needs valgrind (`apt-get install valgrind`; Debian's package). About a minute per checkout.

Run: .venv/bin/python bench/instructions_bench.py [--against DIR] [--small 300] [--large 1300]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions(checkout: Path, orders: int) -> int:
    """Instructions callgrind counted for the whole child process."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "bench/engine_cpu_bench.py", "--child", "--orders", str(orders), "--warmup", "0"],
        cwd=checkout, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"})  # string hashes (dict layouts) the same every run
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind in {checkout}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_order(checkout: Path, small: int, large: int) -> float:
    return (instructions(checkout, large) - instructions(checkout, small)) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to count the same way (the baseline)")
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=1300)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install valgrind")
    if args.large <= args.small:
        sys.exit("--large must be more than --small")
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    with ThreadPoolExecutor(len(checkouts)) as pool:
        counts = list(pool.map(lambda d: per_order(d, args.small, args.large), checkouts))
    print(f"engine thread, resting flow (bench/engine_cpu_bench.py), instructions per order "
          f"({args.large} - {args.small} orders):")
    for checkout, n in zip(checkouts, counts, strict=True):
        print(f"  {str(checkout):40} {n:12,.0f}")
    if len(counts) == 2:
        print(f"  this / against: {counts[0] / counts[1]:.1%}")


if __name__ == "__main__":
    main()
