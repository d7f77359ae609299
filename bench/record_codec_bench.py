"""The journal log's record format (oms.record_codec) against plain pickle, same run: what the engine thread pays
to pickle a batch's record before anything of it is sent, and what the projector pays to read it back.

The records are real: bench/engine_cpu_bench.py's resting flow (each order's NewOrderSingle, routing to two
venues, their acks deferred into the next order's record, as the runner does) runs with its journal's
projector off, and every record it appends is kept. Then, for --rounds alternating rounds:

  encode   pickle.dumps(record, protocol 5) (the format before) | record_codec.encode(record)
  decode   pickle.loads | record_codec.decode, of the same records
  project  Journal.catch_up() over the whole log (the projector's pass: read, decode, rows, audit chain,
           inserts), on two copies of the journal: its log's payloads rewritten as plain pickles | as written,
           with the projector process's garbage collection (oms.projector_process.PassCollector); and the
           second copy once more with Python's automatic collection, as the projector ran before

Printed: microseconds per record (encode, decode) and per order (project), medians of the rounds, and the
ratios. Run: .venv/bin/python bench/record_codec_bench.py [--orders 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import pickle
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import engine_cpu_bench  # noqa: E402  (bench/: the folder of the script)

from oms import record_codec  # noqa: E402
from oms.journal import Journal  # noqa: E402
from oms.projector_process import PassCollector  # noqa: E402


def per_item(fn: Any, items: list[Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fixoms-codec-"))
    try:
        # Keep the records and the journal engine_cpu_bench writes (it removes its folder when done).
        records: list[Any] = []
        encode = record_codec.encode

        def keep(record: Any) -> bytes:
            records.append(record)
            return encode(record)

        folders: list[str] = []
        mkdtemp, rmtree = tempfile.mkdtemp, shutil.rmtree

        def remembered(*args: Any, **kwargs: Any) -> str:
            folders.append(mkdtemp(*args, **kwargs))
            return folders[-1]

        tempfile.mkdtemp, shutil.rmtree = remembered, lambda *a, **k: None  # type: ignore[assignment]
        record_codec.encode = keep  # type: ignore[assignment]
        try:
            engine_cpu_bench.measure(args.orders, 0)
        finally:
            record_codec.encode = encode  # type: ignore[assignment]
            tempfile.mkdtemp, shutil.rmtree = mkdtemp, rmtree  # type: ignore[assignment]
        (source,) = folders
        for name in ("j.db", "j.db-log"):  # a consistent copy of both files (WAL included)
            with sqlite3.connect(f"{source}/{name}") as src, sqlite3.connect(work / name) as dst:
                src.backup(dst)
        shutil.rmtree(source, ignore_errors=True)
        plain_db = work / "plain"
        plain_db.mkdir()
        for name in ("j.db", "j.db-log"):
            shutil.copy(work / name, plain_db / name)
        with sqlite3.connect(plain_db / "j.db-log") as conn:
            rows = conn.execute("SELECT rowid, payload FROM journal_log").fetchall()
            conn.executemany("UPDATE journal_log SET payload = ? WHERE rowid = ?",
                             [(pickle.dumps(record_codec.decode(p), protocol=5), rowid) for rowid, p in rows])

        plain = [pickle.dumps(r, protocol=5) for r in records]
        coded = [encode(r) for r in records]
        assert [record_codec.decode(p) for p in coded] == records
        figures: dict[str, list[float]] = {k: [] for k in ("enc0", "enc1", "dec0", "dec1", "proj0", "proj1", "projgc")}
        for _ in range(args.rounds):
            figures["enc0"].append(per_item(lambda r: pickle.dumps(r, protocol=5), records))
            figures["enc1"].append(per_item(encode, records))
            figures["dec0"].append(per_item(pickle.loads, plain))
            figures["dec1"].append(per_item(record_codec.decode, coded))
            for key, folder in (("proj0", plain_db), ("proj1", work), ("projgc", work)):
                run = work / "run"
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir()
                for name in ("j.db", "j.db-log"):
                    shutil.copy(folder / name, run / name)
                journal = Journal.open(f"sqlite:///{run / 'j.db'}", "OMS1")
                journal.projector = "off"
                collector = PassCollector() if key != "projgc" else None
                start = time.process_time()
                journal.catch_up()
                if collector is not None:
                    collector.after_pass()
                figures[key].append((time.process_time() - start) / args.orders * 1e6)
                gc.enable()
                gc.unfreeze()
                journal.engine.dispose()
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{len(records)} records of {args.orders} resting orders (bench/engine_cpu_bench.py's flow); "
              f"bytes per record: plain pickle {statistics.mean(map(len, plain)):.0f}, "
              f"format 1 {statistics.mean(map(len, coded)):.0f}")
        print(f"{'':34}{'plain pickle':>14}{'format 1':>12}{'ratio':>8}")
        for label, a, b in (("encode, us per record (engine)", "enc0", "enc1"),
                            ("decode, us per record", "dec0", "dec1"),
                            ("projector pass, CPU us per order", "proj0", "proj1")):
            print(f"{label:34}{med[a]:14.1f}{med[b]:12.1f}{med[b] / med[a]:8.0%}")
        print(f"{'projector pass, automatic GC':34}{'':14}{med['projgc']:12.1f}  (format 1, GC as before "
              f"PassCollector: {med['proj1'] / med['projgc']:.0%} of this with it)")
        print(f"(medians of {args.rounds} rounds; encode/decode best of 3 passes over the records each round)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
