"""Restart time with a full journal: engine start -> accepting logons, SQLite and PostgreSQL.

The journal is filled through the journal API (`oms.journal.Journal.commit`, the engine's own write
path) with --orders synthetic orders: each accepted, routed to a venue, acknowledged and - except the
last --open ones - filled, so the tables hold what a day of that many orders leaves (events, orders,
children, executions, ClOrdIDs). Then, --runs times:

  spawn -> logon   `fixoms run` is started and a FIX client (CLIENT1, Username/Password) logs on as
                   soon as the port accepts connections: the time until the Logon is answered;
  -> status        the same client then asks for the status of one of its filled orders (left in the
                   journal at the restart, read back when named): the time until the ExecutionReport
                   (OrdStatus 2, filled) comes - the first business answer, after recovery;
  listen           the same start until the port first accepts a TCP connection;
  load             Journal.load_open() alone (what recovery reads), in this process;
  import           `python -c "import fixoms.app"` (what every start pays before reading anything).

No venue runs during the measurement (the engine's initiator keeps trying in the background, as after
a restart while venues are down), so every run starts from the same journal: reconciliation with the
venues (status requests for the open children) happens after logons are accepted and is not timed.
Target (docs/performance.md): start to accepting logons <= 1 s with 100,000 orders.

Run: .venv/bin/python bench/restart_bench.py [--orders 100000] [--open 1000] [--runs 3] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import simplefix  # noqa: E402
from e2e import ENV, engine_config, pg_admin, pg_reachable  # noqa: E402

from fixoms.netutil import free_port  # noqa: E402
from oms import commands as c  # noqa: E402
from oms import events as ev  # noqa: E402
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce  # noqa: E402
from oms.journal import Journal  # noqa: E402
from oms.model import Order  # noqa: E402
from oms.reports import report, venue_new  # noqa: E402

try:  # oms.schema / oms.queries; before them all of it was in oms.journal (the base e2e.py can measure)
    from oms.queries import set_credential
    from oms.schema import make_engine
except ImportError:
    from oms.journal import make_engine, set_credential  # type: ignore[attr-defined,no-redef]

SYMBOLS = {"AAPL": ("VENUE-A", Decimal("190.00")), "MSFT": ("VENUE-A", Decimal("410.00")),
           "IBM": ("VENUE-B", Decimal("150.00")), "TSLA": ("VENUE-B", Decimal("250.00"))}
PASSWORD = "bench-1"
TARGET_S = 1.0


def populate(url: str, orders: int, still_open: int, batch: int = 1000) -> float:
    """Write `orders` orders through Journal.commit, with the audit rows production writes for them
    (request, venue ack and fill in; ack, child order and fill out); returns the seconds it took.
    (bench/e2e.py --preload uses it too.)"""
    journal = Journal.open(url, "OMS1")
    journal.create_schema()
    for i in (1, 2):
        set_credential(journal.engine, f"CLIENT{i}", f"CLIENT{i}", PASSWORD if i == 1 else "x", frozenset(), "bench")
    start = time.perf_counter()
    ts = datetime.now(UTC)
    names = list(SYMBOLS)
    for first in range(1, orders + 1, batch):
        events: list[ev.Event] = []
        dirty: list[Order] = []
        inbound: list[object] = []
        outbound: list[object] = []
        for k in range(first, min(first + batch, orders + 1)):
            symbol = names[k % 4]
            venue, ref = SYMBOLS[symbol]
            side = Side.BUY if k % 2 else Side.SELL
            qty = Decimal(100 + k % 900)
            price = ref + Decimal(k % 50 - 25) / 100
            oid = f"OMS1-{k}"
            accepted = ev.OrderAccepted(oid, k, f"CLIENT{1 + k % 2}", f"ACC-{1 + k % 2}", f"C{k}", symbol, side,
                                        OrdType.LIMIT, TimeInForce.DAY, qty, price, None, ts, arrival_mid=ref)
            order = Order.from_accepted(accepted)
            child_id = order.next_child_id()
            steps: list[ev.Event] = [
                ev.ChildRouted(oid, child_id, venue, qty, price, OrdType.LIMIT, TimeInForce.DAY),
                ev.ChildAcked(oid, child_id, f"{venue}-{k}"),
            ]
            if k <= orders - still_open:
                steps.append(ev.ChildFilled(oid, child_id, venue, f"{venue}-X{k}", f"{oid}-{1 + order.report_seq}",
                                            qty, price, ts))
            events.append(accepted)
            for step in steps:
                order.apply(step)
                events.append(step)
            dirty.append(order)
            # The business messages production audits for this order: the client's request, the venue's
            # ack (and fill), and what went out (the ack, the child order, the fill).
            inbound.append(c.NewOrder(accepted.session, accepted.cl_ord_id, accepted.account, symbol, side,
                                      OrdType.LIMIT, qty, price))
            inbound.append(c.VenueReport(venue, child_id, None, f"{venue}-{k}", f"{venue}-A{k}", ExecType.NEW,
                                         OrdStatus.NEW))
            outbound.append(report(order, ExecType.NEW))
            outbound.append(venue_new(order, order.children[child_id]))
            if k <= orders - still_open:
                inbound.append(c.VenueReport(venue, child_id, None, f"{venue}-{k}", f"{venue}-X{k}", ExecType.TRADE,
                                             OrdStatus.FILLED, qty, price))
                outbound.append(report(order, ExecType.TRADE))
        journal.commit(events, dirty, inbound=inbound, outbound=outbound)
    close = getattr(journal, "close", None)  # a journal with a projector thread: stop it, mark all sent
    if close is not None:
        close()
    elapsed = time.perf_counter() - start
    journal.engine.dispose()
    return elapsed


# CLIENT1's order C2 (k = 2): a SELL of IBM, filled when populate() runs with --open < orders - 1.
STATUS_OF = (("11", "C2"), ("54", "2"), ("55", "IBM"))


def _fix(msg_type: str, seq: int, fields: tuple[tuple[int | str, object], ...]) -> bytes:
    msg = simplefix.FixMessage()
    for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, "CLIENT1"), (56, "FIXOMS"), (34, seq)):
        msg.append_pair(tag, value)
    msg.append_utc_timestamp(52)
    for tag, value in fields:
        msg.append_pair(tag, value)
    return bytes(msg.encode())


def logon(port: int, timeout: float, status: bool = False) -> tuple[float, float]:
    """A FIX Logon as CLIENT1, then (if `status`) a status request for its filled order C2: the
    perf_counter() times the Logon and the status were answered (nan: not answered)."""
    parser = simplefix.FixParser()
    logged_on = answered = float("nan")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_fix("A", 1, ((98, 0), (108, 30), (141, "Y"), (553, "CLIENT1"), (554, PASSWORD))))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = parser.get_message()
            if reply is None:
                data = sock.recv(4096)
                if not data:
                    break
                parser.append_buffer(data)
                continue
            if logged_on != logged_on:  # nan: the first answer
                if reply.get(35) != b"A":
                    break
                logged_on = time.perf_counter()
                if not status:
                    break
                sock.sendall(_fix("H", 2, STATUS_OF))
            elif reply.get(35) == b"8" and reply.get(11) == b"C2":
                if reply.get(39) != b"2":
                    raise RuntimeError(f"status of C2: OrdStatus {reply.get(39)!r}, expected 2 (filled)")
                answered = time.perf_counter()
                break
    return logged_on, answered


def start_once(config: Path, port: int, log: Path) -> tuple[float, float, float]:
    """(seconds to the first TCP accept, to an answered Logon, to the answered status request) of one
    `fixoms run`."""
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fixoms.cli", "--config", str(config), "--log-level",
                                 "WARNING", "run"], cwd=config.parent, stdout=subprocess.DEVNULL, stderr=out, env=ENV)
    listen = answered = status = float("nan")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"engine exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                time.sleep(0.005)
                continue
            if listen != listen:  # nan: first accept
                listen = time.perf_counter() - t0
            try:
                logged_on, status_at = logon(port, 10, status=True)
                if logged_on == logged_on:
                    answered, status = logged_on - t0, status_at - t0
                    break
            except OSError:
                time.sleep(0.01)
        return listen, answered, status
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def in_process_start(config: Path, port: int) -> tuple[float, float]:
    """(seconds EngineApp(...).start() takes, seconds to an answered Logon) in this process, imports paid."""
    from fixoms import config as cfgmod
    from fixoms.app import EngineApp

    cfg = cfgmod.load(config)
    t0 = time.perf_counter()
    app = EngineApp(cfg)
    app.start()
    started = time.perf_counter() - t0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                logged_on, _ = logon(port, 10)
                if logged_on == logged_on:
                    return started, logged_on - t0
            except OSError:
                time.sleep(0.005)
        return started, float("nan")
    finally:
        app.stop()


def load_profile(url: str, top: int = 12) -> None:
    """Where Journal.load_open() spends its time (cProfile, own time)."""
    import cProfile
    import io
    import pstats

    journal = Journal(make_engine(url), "OMS1")
    prof = cProfile.Profile()
    prof.enable()
    journal.load_open()
    prof.disable()
    journal.engine.dispose()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("  Journal.load_open() by own time (cProfile):")
    for line in lines[start: start + top + 1]:
        print("    " + line.strip()[:150])


def has_warm() -> bool:
    """Whether the code measured keeps a standby's order state (oms.warm; a before/after worktree may not)."""
    return (ROOT / "oms" / "warm.py").exists()


def import_time() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import fixoms.app"], check=True, env=ENV, cwd=ROOT)
    return time.perf_counter() - t0


def load_time(url: str, warm: bool = False) -> tuple[float, int, int]:
    """Journal.load_open(); `warm`: as an HA takeover does it, from the order state a standby kept while
    following the log (oms.warm: read from the tables when the standby started, not timed here)."""
    journal = Journal(make_engine(url), "OMS1")
    if warm:
        from oms.warm import WarmState

        journal.warm = WarmState.load(journal)
    t0 = time.perf_counter()
    state = journal.load_open()
    elapsed = time.perf_counter() - t0
    journal.engine.dispose()
    return elapsed, len(state.orders), sum(len(o.children) for o in state.orders.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=1000, help="orders left working (the rest filled)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true", help="cProfile Journal.load() once per database")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fixoms-restart-"))
    print(f"restart: {args.orders} orders in the journal ({args.open} open), {args.runs} runs, {os.cpu_count()} cores")
    imp = import_time()
    print(f"  import fixoms.app: {imp:.2f}s")
    try:
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            var = tmp / db
            var.mkdir()
            pg_db = f"fixoms_restart_{os.getpid()}"
            if db == "postgresql":
                if why := pg_reachable():
                    print(f"\n== postgresql: skipped, {why}")
                    continue
                pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
                pg_admin(f"CREATE DATABASE {pg_db}")
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_db}"
            else:
                url = f"sqlite:///{var / 'journal.db'}"
            try:
                filled = populate(url, args.orders, args.open)
                port = free_port()
                config = engine_config(var, port, {"VENUE-A": free_port(), "VENUE-B": free_port()}, url, 2)
                loads = [load_time(url) for _ in range(args.runs)]
                warm_loads = [load_time(url, warm=True) for _ in range(args.runs)] if has_warm() else []
                starts = [start_once(config, port, var / "engine.log") for _ in range(args.runs)]
                inproc = [in_process_start(config, port) for _ in range(args.runs)]
                print(f"\n== {db}: journal written in {filled:.1f}s ({args.orders / filled:.0f} orders/s "
                      "through Journal.commit)")
                print(f"  Journal.load_open() median {statistics.median(x[0] for x in loads):.2f}s "
                      f"({loads[0][1]} working orders, {loads[0][2]} children)")
                if warm_loads:
                    cold, warm = statistics.median(x[0] for x in loads), statistics.median(x[0] for x in warm_loads)
                    print(f"  Journal.load_open() at an HA takeover, from the standby's warm state: median {warm:.3f}s "
                          f"({warm_loads[0][1]} working orders; {warm / cold:.0%} of the restart's load)")
                listen = [s[0] for s in starts]
                ready = [s[1] for s in starts]
                print(f"  spawn -> listening  median {statistics.median(listen):.2f}s  "
                      f"(runs: {', '.join(f'{x:.2f}' for x in listen)})")
                print(f"  spawn -> logon      median {statistics.median(ready):.2f}s  "
                      f"(runs: {', '.join(f'{x:.2f}' for x in ready)})  target <= {TARGET_S:.0f}s: "
                      f"{'met' if statistics.median(ready) <= TARGET_S else 'NOT met'}")
                status = [s[2] for s in starts]
                print(f"  spawn -> status of a filled order answered  median {statistics.median(status):.2f}s  "
                      f"(runs: {', '.join(f'{x:.2f}' for x in status)})")
                print(f"  in process, imports paid: EngineApp start median {statistics.median(x[0] for x in inproc):.2f}s,"
                      f" -> logon median {statistics.median(x[1] for x in inproc):.2f}s  target <= {TARGET_S:.0f}s: "
                      f"{'met' if statistics.median(x[1] for x in inproc) <= TARGET_S else 'NOT met'}")
                if args.profile:
                    load_profile(url)
            finally:
                if db == "postgresql":
                    pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
