"""End to end under load: N real FIX client sessions -> the engine (`fixoms run`) -> two simulated venues
(`fixoms venue-sim`) that fill -> fills back; with the journal on SQLite and on PostgreSQL. In the same
run, the same load against a bare QuickFIX echo acceptor (bench/echo_acceptor.py) on this machine: the
ceiling.

Orders are marketable IOC limits (buy 1% over / sell 1% under the reference, sizes 1..89, four symbols
over both venues), so every order ends (filled, or its remainder canceled) and the venues' books stay
stocked. Each target gets:

  throughput  closed loop: every session keeps --window orders outstanding and sends one more when one
              ends (the echo: when it is acknowledged); orders ended per second over --seconds
  latency     open loop at each --rate (orders/s in all), round robin over the sessions, for --seconds:
              ack = NewOrderSingle sent -> first ExecutionReport received, fill = sent -> first fill;
              p50 / p99 / p99.9 / max, measured in the load generator (it shares the 2 cores)

and the CPU each process used during the throughput run. Targets (docs/performance.md): sustained
throughput >= 60% of the bare echo's; at 1,000 orders/s ack p50 <= 300 us and p99 <= 1 ms.

--profile samples the engine with py-spy (pip install py-spy into .venv) during its throughput run and
prints the functions that dominate. --nagle runs the engine a second time with SocketNodelay=N in its
sessions.cfg [DEFAULT] (QuickFIX 1.16's default: Nagle on), to show what SocketNodelay=Y is worth on the
client side (the venue simulators keep theirs).

Run: .venv/bin/python bench/e2e.py [--sessions 4] [--rate 200,1000] [--seconds 10] [--window 50]
                                    [--db sqlite,postgresql] [--profile] [--nagle] [--no-echo]
Everything runs on 127.0.0.1 in a temporary folder; PostgreSQL gets a database of its own, dropped after.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fix_engine.quickfix_import import fix  # noqa: E402
from fixoms.netutil import free_port  # noqa: E402

SOH = "\x01"
SYMBOLS = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "IBM": Decimal("150.00"), "TSLA": Decimal("250.00")}
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TERMINAL = frozenset("248C3")  # Filled, Canceled, Rejected, Expired, DoneForDay
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# `fixoms ...` as a subprocess: imported as fixoms.cli (not run as __main__), like the console script.
CLI = [sys.executable, "-c", "import sys; from fixoms.cli import main; sys.argv[0] = 'fixoms'; main()"]


# --- the load generator: a QuickFIX initiator with N sessions ------------------------------------------
class Load(fix.Application):  # type: ignore[misc]
    """Records, per ClOrdID, when it was sent and when its first ack / first fill / end came back."""

    def __init__(self, passwords: dict[str, str]) -> None:
        super().__init__()
        self.passwords = passwords
        self.logged_on: set[str] = set()
        self.sids: dict[str, Any] = {}
        self.sent: dict[str, int] = {}
        self.ack: dict[str, int] = {}
        self.fill: dict[str, int] = {}
        self.end: dict[str, int] = {}
        self.owner: dict[str, str] = {}
        self.windows: dict[str, threading.Semaphore] = {}
        self.complete_on = "end"  # ack | fill | end: what frees a window slot
        self.errors = 0

    def onCreate(self, sid: Any) -> None:
        comp = sid.getSenderCompID().getValue()
        self.sids[comp] = fix.SessionID(sid.getBeginString().getValue(), comp, sid.getTargetCompID().getValue())

    def onLogon(self, sid: Any) -> None:
        self.logged_on.add(sid.getSenderCompID().getValue())

    def onLogout(self, sid: Any) -> None:
        self.logged_on.discard(sid.getSenderCompID().getValue())

    def toAdmin(self, message: Any, sid: Any) -> None:
        try:
            if message.getHeader().getField(35) == "A":
                comp = sid.getSenderCompID().getValue()
                if comp in self.passwords:
                    message.setField(553, comp)
                    message.setField(554, self.passwords[comp])
        except Exception:
            self.errors += 1

    def fromAdmin(self, message: Any, sid: Any) -> None:
        pass

    def toApp(self, message: Any, sid: Any) -> None:
        pass

    def fromApp(self, message: Any, sid: Any) -> None:
        now = time.perf_counter_ns()
        try:
            raw = message.toString()
            i = raw.find(f"{SOH}11=") + 4
            cl = raw[i : raw.find(SOH, i)]
            j = raw.find(f"{SOH}150=") + 5
            exec_type = raw[j]
            k = raw.find(f"{SOH}39=") + 4
            status = raw[k]
            if cl not in self.ack:
                self.ack[cl] = now
            if exec_type in "12F" and cl not in self.fill:
                self.fill[cl] = now
            if status in TERMINAL and cl not in self.end:
                self.end[cl] = now
            mode = self.complete_on
            done = (cl in self.ack) if mode == "ack" else (cl in self.fill or cl in self.end) if mode == "fill" \
                else (cl in self.end)
            owner = self.owner.pop(cl, None) if done else None
            if owner is not None:
                self.windows[owner].release()
        except Exception:
            self.errors += 1


def order_message(cl: str, k: int, ts: str) -> str:
    symbol = list(SYMBOLS)[k % 4]
    buy = (k // 4) % 2 == 0
    ref = SYMBOLS[symbol]
    px = ref * Decimal("1.01") if buy else ref * Decimal("0.99")
    px -= Decimal(k % 7) / 100 if buy else -Decimal(k % 7) / 100  # no two orders alike within a second
    return (f"8=FIX.4.4{SOH}9=0{SOH}35=D{SOH}11={cl}{SOH}21=1{SOH}55={symbol}{SOH}54={'1' if buy else '2'}{SOH}"
            f"60={ts}{SOH}38={1 + k % 89}{SOH}40=2{SOH}44={px:.2f}{SOH}59=3{SOH}10=000{SOH}")


def utc_now() -> str:
    t = datetime.now(UTC)
    return t.strftime("%Y%m%d-%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


class Generator:
    def __init__(self, port: int, sessions: int, var: Path, passwords: dict[str, str] | None = None) -> None:
        self.comps = [f"CLIENT{i}" for i in range(1, sessions + 1)]
        var.mkdir(parents=True, exist_ok=True)
        lines = ["[DEFAULT]", "ConnectionType=initiator", "SocketConnectHost=127.0.0.1", f"SocketConnectPort={port}",
                 f"FileStorePath={var / 'store'}", "StartTime=00:00:00", "EndTime=00:00:00", "HeartBtInt=30",
                 "ReconnectInterval=1", "UseDataDictionary=N", "ResetOnLogon=Y", "SocketNodelay=Y",
                 "BeginString=FIX.4.4",
                 "TargetCompID=FIXOMS", ""]
        for comp in self.comps:
            lines += ["[SESSION]", f"SenderCompID={comp}", ""]
        (var / "load.cfg").write_text("\n".join(lines))
        self.settings = fix.SessionSettings(str(var / "load.cfg"))
        self.app = Load(passwords or {})
        self.store = fix.FileStoreFactory(self.settings)
        self.initiator = fix.SocketInitiator(self.app, self.store, self.settings)
        self.run_id = f"{int(time.time()) % 100000:05d}"
        self.counter = 0
        self.sent_lock = threading.Lock()

    def start(self, timeout: float = 30) -> None:
        self.initiator.start()
        deadline = time.monotonic() + timeout
        while len(self.app.logged_on) < len(self.comps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {sorted(self.app.logged_on)} logged on")
            time.sleep(0.05)

    def stop(self) -> None:
        self.initiator.stop(True)
        self.initiator = None

    def send(self, comp: str, track: bool = False) -> str:
        with self.sent_lock:
            self.counter += 1
            k = self.counter
        cl = f"{self.run_id}-{k}"
        raw = order_message(cl, k, utc_now())
        if track:
            self.app.owner[cl] = comp
        self.app.sent[cl] = time.perf_counter_ns()
        fix.Session.sendToTarget(fix.Message(raw, False), self.app.sids[comp])
        return cl

    def reset(self) -> None:
        for d in (self.app.sent, self.app.ack, self.app.fill, self.app.end, self.app.owner):
            d.clear()

    # --- closed loop ----------------------------------------------------------------------------------
    def throughput(self, seconds: float, window: int, complete_on: str) -> tuple[float, float, int]:
        """(orders ended per second, acks per second, stalls) with `window` outstanding per session."""
        self.reset()
        self.app.complete_on = complete_on
        self.app.windows = {c: threading.Semaphore(window) for c in self.comps}
        stop = threading.Event()
        stalls = collections.Counter[str]()

        def run(comp: str) -> None:
            sem = self.app.windows[comp]
            while not stop.is_set():
                if not sem.acquire(timeout=2):
                    stalls[comp] += 1
                    continue
                self.send(comp, track=True)

        threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in self.comps]
        t0 = time.perf_counter_ns()
        for t in threads:
            t.start()
        time.sleep(seconds)
        t1 = time.perf_counter_ns()
        stop.set()
        for t in threads:
            t.join(5)
        # snapshots (list() of a dict view runs under the GIL): QuickFIX's thread keeps adding
        ack, end, fill = list(self.app.ack.values()), list(self.app.end.values()), dict(self.app.fill)
        done = ack if complete_on == "ack" else end if complete_on == "end" else list({**dict(self.app.end),
                                                                                       **fill}.values())
        ended = sum(1 for t in done if t0 <= t <= t1)
        acks = sum(1 for t in ack if t0 <= t <= t1)
        self.settle(10)
        elapsed = (t1 - t0) / 1e9
        return ended / elapsed, acks / elapsed, sum(stalls.values())

    # --- open loop ------------------------------------------------------------------------------------
    def latency(self, rate: float, seconds: float, want_fill: bool) -> dict[str, Any]:
        self.reset()
        self.app.complete_on = "end"
        n = int(rate * seconds)
        interval = 1.0 / rate
        start = time.perf_counter()
        late = 0
        for j in range(n):
            target = start + j * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -interval:
                late += 1
            self.send(self.comps[j % len(self.comps)])
        achieved = n / (time.perf_counter() - start)
        self.settle(30, want_fill)
        sent, ack, fill = dict(self.app.sent), dict(self.app.ack), dict(self.app.fill)
        acks = [(ack[c] - t) / 1000 for c, t in sent.items() if c in ack]
        fills = [(fill[c] - t) / 1000 for c, t in sent.items() if c in fill]
        return {"achieved": achieved, "sent": len(sent), "acked": len(acks), "filled": len(fills),
                "ack": percentiles(acks), "fill": percentiles(fills) if want_fill else None, "late": late}

    def settle(self, timeout: float, want_fill: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.app.ack) >= len(self.app.sent) and (not want_fill or len(self.app.end) >= len(self.app.sent)):
                return
            time.sleep(0.05)


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    xs = sorted(xs)
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "p99.9": pick(0.999), "max": xs[-1], "n": len(xs)}


# --- processes ----------------------------------------------------------------------------------------
def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_config(tmp: Path, port: int, venue_ports: dict[str, int], url: str, sessions: int,
                  nagle: bool = False) -> Path:
    """sessions.cfg: the repository's [DEFAULT] and non-client sessions, our CLIENT1..n (FIX 4.4);
    fixoms.toml: the repository's with our database, accounts, no per-session rate limit, still venues."""
    blocks = (ROOT / "sessions.cfg").read_text().split("[SESSION]")
    kept = [b for b in blocks[1:] if not re.search(r"(?m)^TargetCompID=CLIENT\d+\s*$", b)]
    cfg = blocks[0] + "".join(f"[SESSION]\nConnectionType=acceptor\nBeginString=FIX.4.4\nTargetCompID=CLIENT{i}\n"
                              f"SocketAcceptPort={port}\nDataDictionary=FIX44.xml\n\n" for i in range(1, sessions + 1))
    cfg += "".join("[SESSION]" + b for b in kept)
    cfg = re.sub(r"(?m)^SocketAcceptPort=\d+", f"SocketAcceptPort={port}", cfg)
    cfg = re.sub(r"(?m)^SocketNodelay=.*\n", "", cfg)  # ours, whatever the repository's says
    # QuickFIX 1.16 leaves Nagle on unless told: back-to-back messages then wait for a delayed ACK
    cfg = cfg.replace("[DEFAULT]\n", f"[DEFAULT]\nSocketNodelay={'N' if nagle else 'Y'}\n", 1)
    for name, p in venue_ports.items():
        cfg = re.sub(rf"(TargetCompID={re.escape(name)}\n(?:.*\n)*?SocketConnectPort=)\d+", rf"\g<1>{p}", cfg)
    (tmp / "sessions.cfg").write_text(cfg)
    toml = (ROOT / "fixoms.toml").read_text()
    toml = re.sub(r'(?m)^url = "sqlite:///var/fixoms.db"', f'url = "{url}"', toml)
    toml = re.sub(r"(?m)^session_submit_rate\s*=.*$", 'session_submit_rate = "none"', toml)
    toml = re.sub(r"(?m)^session_modify_rate\s*=.*$", 'session_modify_rate = "none"', toml)
    toml = re.sub(r"(?m)^activity_ms\s*=.*$", "activity_ms = 0", toml)
    toml = re.sub(r"(?m)^latency_ms\s*=.*$", "latency_ms = 0", toml)
    accounts = "".join(f'CLIENT{i} = "ACC-B{i}"\n' for i in range(1, sessions + 1))
    toml = re.sub(r"(?ms)^\[accounts\]\n.*?(?=^\[)", f"[accounts]\n{accounts}\n", toml)
    for name, p in venue_ports.items():
        toml = re.sub(rf"(?ms)(^\[sim_venues\.{re.escape(name)}\]\nport = )\d+", rf"\g<1>{p}", toml)
    (tmp / "fixoms.toml").write_text(toml)
    return tmp / "fixoms.toml"


@dataclass
class Target:
    name: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0
    passwords: dict[str, str] = field(default_factory=dict)


@contextmanager
def echo_target(tmp: Path, sessions: int, fill: bool, threaded: bool = False) -> Iterator[Target]:
    port = free_port()
    var = tmp / f"echo{'-fill' if fill else ''}{'-threaded' if threaded else ''}"
    var.mkdir(parents=True, exist_ok=True)
    log = var / "echo.log"
    cmd = [sys.executable, str(ROOT / "bench" / "echo_acceptor.py"), "--port", str(port), "--sessions", str(sessions),
           "--var-dir", str(var)] + (["--fill"] if fill else []) + (["--threaded"] if threaded else [])
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=ENV)
    try:
        wait_listening(port, proc, log)
        yield Target(("echo + fill" if fill else "echo") + (" (threaded)" if threaded else ""), {"echo": proc}, port)
    finally:
        stop_process(proc)


@contextmanager
def engine_target(tmp: Path, sessions: int, db: str, nagle: bool = False,
                  switch_interval: float | None = None) -> Iterator[Target]:
    from oms.journal import create_schema, make_engine, set_credential

    var = tmp / f"engine-{db}"
    var.mkdir(parents=True, exist_ok=True)
    pg_db = f"fixoms_bench_{os.getpid()}"
    if db == "postgresql":
        pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        pg_admin(f"CREATE DATABASE {pg_db}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_db}"
    else:
        url = f"sqlite:///{var / 'journal.db'}"
    port = free_port()
    venue_ports = {"VENUE-A": free_port(), "VENUE-B": free_port()}
    config = engine_config(var, port, venue_ports, url, sessions, nagle)
    passwords = {f"CLIENT{i}": f"bench-{i}" for i in range(1, sessions + 1)}
    sa = make_engine(url)
    create_schema(sa)
    for comp, pw in passwords.items():
        set_credential(sa, comp, comp, pw, frozenset(), "bench")
    sa.dispose()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, vport in venue_ports.items():
            with open(var / f"{name}.log", "ab") as out:
                procs[name] = subprocess.Popen(
                    [*CLI, "--config", str(config), "venue-sim", "--name", name,
                     "--port", str(vport), "--var-dir", str(var / "venues" / name)],
                    cwd=var, stdout=out, stderr=out, env=ENV)
            wait_listening(vport, procs[name], var / f"{name}.log")
        # --switch-interval: the same `fixoms run`, with the GIL handed over more often than every 5 ms
        launch = ([sys.executable, "-c", f"import sys; sys.setswitchinterval({switch_interval / 1000}); "
                   "from fixoms.cli import main; sys.argv[0] = 'fixoms'; main()"]
                  if switch_interval else CLI)
        with open(var / "engine.log", "ab") as out:
            procs["engine"] = subprocess.Popen(
                [*launch, "--config", str(config), "--log-level", "WARNING", "run"],
                cwd=var, stdout=subprocess.DEVNULL, stderr=out, env=ENV)
        wait_listening(port, procs["engine"], var / "engine.log")
        time.sleep(1.0)  # the venues log on and send their books
        extra = (", SocketNodelay=N" if nagle else "") + (f", switch {switch_interval} ms" if switch_interval else "")
        yield Target(f"engine ({db}{extra})", procs, port, passwords)
    finally:
        for proc in procs.values():
            stop_process(proc)
        if db == "postgresql":
            with suppress(Exception):
                pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pg_reachable() -> str | None:
    try:
        pg_admin("SELECT 1")
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


# --- profiling -------------------------------------------------------------------------------------------
class Profiler:
    """py-spy record on a pid for the duration of a `with` block; the top functions afterwards."""

    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        self.pid, self.out, self.seconds = pid, out, seconds
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            print("  (py-spy not found: pip install py-spy into .venv for --profile)")
            return self
        # --gil: only the thread holding the GIL is sampled, i.e. where the engine's Python time goes
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--duration", str(int(self.seconds)),
                                      "--rate", "200", "--format", "raw", "--threads", "--gil", "--output",
                                      str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(10)

    def report(self, top: int = 15) -> None:
        if not self.out.exists():
            print("  (no profile written)")
            return
        by_thread: collections.Counter[str] = collections.Counter()
        own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            thread = re.sub(r"thread \(0x[0-9a-fA-F]+\)|\(\d+\)|thread", "", frames[0]).strip(" :") or "?"
            frames = [shorten(f) for f in frames[1:]]
            total += n
            by_thread[thread] += n
            for scope in (thread, "*"):
                if frames:
                    own[scope][frames[-1]] += n
                    for f in set(frames):
                        inclusive[scope][f] += n
        if not total:
            print("  (no samples)")
            return
        print(f"  py-spy --gil: {total} samples at 200/s of the thread holding the GIL - share by thread:")
        for name, n in by_thread.most_common(6):
            print(f"    {100 * n / total:5.1f}%  {name}")
        engine = by_thread.get("oms-engine", 0)
        if engine:
            print(f"  oms-engine thread, functions including callees (% of that thread's {engine} samples):")
            skip = ("Thread.", "_bootstrap", "Engine._run ")
            for name, n in [x for x in inclusive["oms-engine"].most_common(top + 10) if not x[0].startswith(skip)][:top]:
                print(f"    {100 * n / engine:5.1f}%  {name}")
            print("  oms-engine thread, own time:")
            for name, n in own["oms-engine"].most_common(top):
                print(f"    {100 * n / engine:5.1f}%  {name}")
        print("  whole process, own time (% of all samples):")
        for name, n in own["*"].most_common(top):
            print(f"    {100 * n / total:5.1f}%  {name}")


def shorten(frame: str) -> str:
    """'process (oms/engine.py:201)' with the path cut to the package."""
    m = re.match(r"(.*) \((.*):(\d+)\)$", frame)
    if not m:
        return frame
    name, path, _line = m.groups()
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# --- the run ---------------------------------------------------------------------------------------------
def fmt(p: dict[str, float] | None) -> str:
    if not p:
        return "-"
    return f"p50 {p['p50']:7.0f}  p99 {p['p99']:7.0f}  p99.9 {p['p99.9']:7.0f}  max {p['max']:7.0f} us"


def measure(target: Target, args: argparse.Namespace, tmp: Path, complete_on: str, want_fill: bool,
            profile: Callable[[], Profiler | None] | None = None) -> dict[str, Any]:
    gen = Generator(target.port, args.sessions, tmp / f"load-{target.name.replace(' ', '_')}", target.passwords)
    gen.start()
    try:
        gen.latency(200, 1.0, want_fill)  # warm up: imports, caches, the venues' books
        before = {name: cpu_seconds(p.pid) for name, p in target.procs.items()}
        me = time.process_time()
        profiler = profile() if profile else None
        if profiler is not None:
            with profiler:
                ended, acks, stalls = gen.throughput(args.seconds, args.window, complete_on)
        else:
            ended, acks, stalls = gen.throughput(args.seconds, args.window, complete_on)
        cpu = {name: (cpu_seconds(p.pid) - before[name]) / args.seconds for name, p in target.procs.items()}
        cpu["load generator"] = (time.process_time() - me) / args.seconds
        lats = {}
        for rate in args.rates:
            time.sleep(1.0)
            lats[rate] = gen.latency(rate, args.seconds, want_fill)
        return {"throughput": ended, "acks": acks, "stalls": stalls, "cpu": cpu, "latency": lats,
                "errors": gen.app.errors, "profiler": profiler}
    finally:
        gen.stop()


def show(name: str, r: dict[str, Any]) -> None:
    print(f"\n== {name}")
    print(f"  throughput      {r['throughput']:8.0f} orders/s ended ({r['acks']:.0f} acks/s)"
          + (f", {r['stalls']} window stalls" if r["stalls"] else ""))
    print("  cpu (cores)     " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items()))
    for rate, lat in r["latency"].items():
        print(f"  at {rate:.0f}/s: achieved {lat['achieved']:.0f}/s, {lat['acked']}/{lat['sent']} acked, "
              f"{lat['filled']} filled" + (f", {lat['late']} sends late" if lat["late"] else ""))
        print(f"    ack latency   {fmt(lat['ack'])}")
        if lat["fill"] is not None:
            print(f"    fill latency  {fmt(lat['fill'])}")
    if r["errors"]:
        print(f"  load generator callback errors: {r['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", default="1000", help="orders/s of the latency run(s), all sessions: 200,1000")
    parser.add_argument("--seconds", type=float, default=10, help="length of each run")
    parser.add_argument("--window", type=int, default=50, help="outstanding orders per session (throughput)")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true", help="py-spy the engine during its throughput run")
    parser.add_argument("--no-echo", action="store_true")
    parser.add_argument("--switch-interval", type=float, default=None, metavar="MS",
                        help="run the engine with sys.setswitchinterval(MS/1000) (default 5 ms) - an experiment")
    parser.add_argument("--nagle", action="store_true",
                        help="also run the engine with SocketNodelay=N (Nagle on) in its sessions.cfg [DEFAULT]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="fixoms-e2e-"))
    print(f"e2e: {args.sessions} sessions, window {args.window}, {args.seconds:.0f}s runs, latency at {args.rate}/s, "
          f"{os.cpu_count()} cores; folder {tmp}")
    results: dict[str, dict[str, Any]] = {}
    try:
        if not args.no_echo:
            with echo_target(tmp, args.sessions, fill=False) as t:
                results[t.name] = measure(t, args, tmp, "ack", False)
                show(t.name, results[t.name])
            with echo_target(tmp, args.sessions, fill=True) as t:
                results[t.name] = measure(t, args, tmp, "fill", True)
                show(t.name, results[t.name])
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            if db == "postgresql" and (why := pg_reachable()):
                print(f"\n== engine (postgresql): skipped, {why}")
                continue
            for nagle in (False, True) if args.nagle else (False,):
                with engine_target(tmp, args.sessions, db, nagle, args.switch_interval) as t:
                    pid = t.procs["engine"].pid
                    prof = (lambda pid=pid, db=db: Profiler(pid, tmp / f"profile-{db}.txt", args.seconds)) \
                        if args.profile and not nagle else None
                    r = measure(t, args, tmp, "end", True, prof)
                    results[t.name] = r
                    show(t.name, r)
                    if r["profiler"] is not None:
                        r["profiler"].report()
        summary(results)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def summary(results: dict[str, dict[str, Any]]) -> None:
    print("\n== against the targets")
    echo = results.get("echo")
    for name, r in results.items():
        if not name.startswith("engine"):
            continue
        if echo:
            ratio = r["throughput"] / echo["throughput"]
            print(f"  {name}: throughput {r['throughput']:.0f}/s = {100 * ratio:.0f}% of the bare echo's "
                  f"{echo['throughput']:.0f}/s (target >= 60%: {'met' if ratio >= 0.6 else 'NOT met'})")
            if "echo + fill" in results:
                ef = results["echo + fill"]["throughput"]
                print(f"      ({100 * r['throughput'] / ef:.0f}% of the echo that also fills, {ef:.0f}/s)")
        lat = r["latency"].get(1000.0)
        if lat and lat["ack"]:
            ack = lat["ack"]
            ok = ack["p50"] <= 300 and ack["p99"] <= 1000
            print(f"  {name}: at 1000/s ack p50 {ack['p50']:.0f} us (<= 300), p99 {ack['p99']:.0f} us (<= 1000): "
                  f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
