"""What QuickFIX's PostgreSQLStore (HA mode) costs per FIX message, beside FileStore, in the same run.

QuickFIX persists every message it sends before writing it to the socket (store.set, then the next
sender number), and moves the next target number for every message it receives: on the session's own
thread, with the session's lock held. (Our patched PostgreSQLStore writes the first two in one statement
and the third at most every 100 ms: native/quickfix/build.sh.) This times exactly those calls on a store of each kind, for one
ExecutionReport-sized message: the PostgreSQL one with the lease held and the fencing trigger in place,
as an HA primary runs it.

    .venv/bin/python bench/ha_store_bench.py [--url URL] [-n 5000]

By default it creates a database of its own and drops it after; --url: a scratch database (it writes
instance BENCH's lease and QuickFIX rows there), never a production journal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e import scratch_pg  # noqa: E402  (bench/: the folder of the script)

MESSAGE = ("8=FIX.4.4\x019=300\x0135=8\x0134={seq}\x0149=FIXOMS\x0152=20250101-12:00:00.000\x0156=CLIENT1\x01"
           "6=150.00\x0111=C1\x0114=100\x0117=OMS1-E-1\x0131=150.00\x0132=100\x0137=OMS1-1\x0138=100\x01"
           "39=2\x0154=1\x0155=IBM\x0160=20250101-12:00:00.000\x01150=F\x01151=0\x011=ACC-1\x0110=000\x01")


def _time_store(store: object, n: int) -> tuple[float, float]:
    """(per sent message, per received message) in microseconds: the median of 5 rounds."""
    sends, receives = [], []
    seq = store.getNextSenderMsgSeqNum()  # type: ignore[attr-defined]
    per_round = max(1, n // 5)
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(per_round):
            store.set(seq, MESSAGE.format(seq=seq))  # type: ignore[attr-defined]
            store.incrNextSenderMsgSeqNum()  # type: ignore[attr-defined]
            seq += 1
        sends.append((time.perf_counter() - started) / per_round * 1e6)
        started = time.perf_counter()
        for _ in range(per_round):
            store.incrNextTargetMsgSeqNum()  # type: ignore[attr-defined]
        receives.append((time.perf_counter() - started) / per_round * 1e6)
    return statistics.median(sends), statistics.median(receives)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FIXOMS_BENCH_PG"),
                        help="a scratch database (default: one created for the run on 127.0.0.1 and dropped after)")
    parser.add_argument("-n", type=int, default=5000, help="messages per store")
    args = parser.parse_args()
    if args.url is not None:
        run(args)
        return
    with scratch_pg(f"fixoms_bench_ha_{os.getpid()}") as args.url:
        run(args)


def run(args: argparse.Namespace) -> None:

    from sqlalchemy import text

    from fix_engine.quickfix_import import fix
    from fix_engine.settings import SessionOverrides, pg_store_overrides, quickfix_pg_store
    from oms.lease import Lease, new_holder_id
    from oms.schema import create_schema, make_engine

    if not quickfix_pg_store():
        sys.exit("this QuickFIX has no PostgreSQL store (native/quickfix/build.sh with libpq)")
    holder = new_holder_id()
    os.environ["PGAPPNAME"] = holder  # the store's fence lets the lease holder write
    db = make_engine(args.url)
    create_schema(db)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM ha_lease WHERE name = 'BENCH'"))
    lease = Lease(db, "BENCH", holder, lease_s=600)
    assert lease.try_acquire()
    with db.begin() as conn:
        conn.execute(text("DELETE FROM messages WHERE targetcompid = 'BENCH'"))
        conn.execute(text("DELETE FROM sessions WHERE targetcompid = 'BENCH'"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.cfg"
        store = "".join(f"{k}={v}\n" for k, v in pg_store_overrides(SessionOverrides(), args.url).extra.items())
        cfg.write_text(f"[DEFAULT]\nConnectionType=initiator\nFileStorePath={tmp}/store\nStartTime=00:00:00\n"
                       "EndTime=00:00:00\nHeartBtInt=30\nSocketConnectHost=127.0.0.1\nSocketConnectPort=1\n"
                       f"{store}[SESSION]\nBeginString=FIX.4.4\nSenderCompID=FIXOMS\nTargetCompID=BENCH\n")
        settings = fix.SessionSettings(str(cfg))
        sid = fix.SessionID("FIX.4.4", "FIXOMS", "BENCH")
        now = fix.UtcTimeStamp.now() if hasattr(fix.UtcTimeStamp, "now") else fix.UtcTimeStamp()
        file_factory = fix.FileStoreFactory(settings)
        pg_factory = fix.PostgreSQLStoreFactory(settings)
        file_store = file_factory.create(now, sid)
        pg_store = pg_factory.create(now, sid)
        file_send, file_recv = _time_store(file_store, args.n)
        pg_send, pg_recv = _time_store(pg_store, args.n)
        file_factory.destroy(file_store)
        pg_factory.destroy(pg_store)
    with db.begin() as conn:  # while the lease is ours: the fence refuses anyone else
        conn.execute(text("DELETE FROM messages WHERE targetcompid = 'BENCH'"))
        conn.execute(text("DELETE FROM sessions WHERE targetcompid = 'BENCH'"))
    lease.release()
    db.dispose()
    print(f"{args.n} messages per store, median of 5 rounds, microseconds per message")
    print(f"{'store':<16}{'send (set+seq)':>16}{'receive (seq)':>16}")
    print(f"{'FileStore':<16}{file_send:>16.1f}{file_recv:>16.1f}")
    print(f"{'PostgreSQLStore':<16}{pg_send:>16.1f}{pg_recv:>16.1f}")


if __name__ == "__main__":
    main()
