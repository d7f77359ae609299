"""Engines started and stopped many times in one process, always with the same SessionIDs (issue 15).

QuickFIX keeps one session registry per process, keyed by SessionID, and its threaded acceptor shares
descriptor numbers between threads: an engine that leaves a session registered, a thread running or a
socket open breaks the next engine with the same sessions - its client's logon is refused ("Session not
found"), its port is taken, or a stale close resets one of its connections - and sooner or later the
process crashes in a destructor. Each cycle here starts an engine (or fails to: the acceptor's port is
taken, or the journal cannot be read for recovery while the client sessions already listen), and checks
after its stop that nothing of it is left: no session registered, no listening socket on its port, no
thread, no open descriptor; and that a client logs on to the next engine over a real session. A failed
start's exception is kept, as pytest keeps a failed setup's: its traceback refers to the engine's QuickFIX
objects.

The fast variant runs engines with the client sessions only (no venue initiator, whose stop waits for
the venues' Logout); `test_start_stop_with_venues` adds the venue simulators and a FixClient. The `slow`
variants run the same for longer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fix_engine import codec
from fix_engine import settings as fix_settings
from fix_engine.quickfix_import import fix
from tests.conftest import PASSWORDS, ROOT, run_stack, seed_credentials

FAST_CYCLES = 150
SLOW_CYCLES = 1500
VENUE_CYCLES = 4
SLOW_VENUE_CYCLES = 60


def native_threads() -> int:
    """Threads of this process, QuickFIX's (invisible to `threading`) included."""
    return len(os.listdir("/proc/self/task"))


def open_files() -> int:
    """Descriptors open in this process: sockets, the FIX stores' and logs' files, the journal."""
    return len(os.listdir("/proc/self/fd"))


def listening(port: int) -> bool:
    """Something in this process (or another) still listens on the port: it cannot be bound again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def logon(port: int, comp_id: str = "CLIENT1") -> str:
    """A client's Logon over a real socket; returns the MsgType of the answer ("" if the socket was just
    closed, as QuickFIX does for a session it does not know). ResetSeqNumFlag: every cycle starts at 1."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(logon_message(comp_id))
        return answer(sock)


def logon_message(comp_id: str) -> bytes:
    import simplefix

    msg = simplefix.FixMessage()
    for tag, value in ((8, codec.FIX44), (35, "A"), (49, comp_id), (56, "FIXOMS"), (34, 1)):
        msg.append_pair(tag, value)
    msg.append_utc_timestamp(52)
    for tag, value in ((98, 0), (108, 30), (141, "Y"), (codec.USERNAME, comp_id),
                       (codec.PASSWORD, PASSWORDS[comp_id])):
        msg.append_pair(tag, value)
    return bytes(msg.encode())


def answer(sock: socket.socket) -> str:
    """The MsgType of the first message the peer sends ("" if it closes the connection first)."""
    import simplefix

    parser = simplefix.FixParser()
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            return ""
        if not data:
            return ""
        parser.append_buffer(data)
        reply = parser.get_message()
        if reply is not None:
            return str(reply.get(35).decode())


@dataclass
class Bench:
    tmp: Path
    db_path: Path
    sessions_file: Path
    port: int
    config: Any
    settings: Any  # every session the engines have, to ask QuickFIX's registry about
    threads: int = 0
    files: int = 0
    failures: list[Any] = field(default_factory=list)

    def engine(self) -> Any:
        from fixoms.app import EngineApp

        return EngineApp(self.config, fix_settings.SessionOverrides(var_dir=self.tmp / "engine",
                                                                    acceptor_port=self.port))

    def assert_released(self, what: str) -> None:
        assert_released(what, self.settings, self.port, self.threads, self.files)


def assert_released(what: str, settings: Any, port: int, threads: int, files: int) -> None:
    """Nothing of a stopped (or failed) engine is left: no session registered, nothing listening on its
    port, no thread or descriptor beyond the counts from before it was built."""
    assert fix_settings.registered(settings) == [], f"{what}: sessions left registered"
    assert not listening(port), f"{what}: port {port} still bound"
    deadline = time.monotonic() + 5  # the scheduler's, ticker's and venues' threads end on their own, soon
    while (native_threads() > threads or open_files() > files) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert native_threads() <= threads, f"{what}: {native_threads() - threads} thread(s) left"
    assert open_files() <= files, f"{what}: {open_files() - files} descriptor(s) left open"


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    from fixoms import config as cfgmod
    from fixoms.netutil import free_port

    db_path = tmp_path / "journal.db"
    url = f"sqlite:///{db_path}"
    seed_credentials(url)
    # The client sessions of sessions.cfg, as they are: only the venue sessions are left out.
    text = (ROOT / "sessions.cfg").read_text()
    assert "# --- venues" in text
    sessions_file = tmp_path / "sessions.cfg"
    sessions_file.write_text(text.split("# --- venues")[0])
    config = replace(cfgmod.load(ROOT / "fixoms.toml"), database_url=url, var_dir=tmp_path / "engine",
                     sessions_file=sessions_file, admin_socket=tmp_path / "admin.sock", metrics_port=None)
    return Bench(tmp_path, db_path, sessions_file, free_port(), config, fix_settings.load(ROOT / "sessions.cfg"))


class PortTaken:
    """Someone else listens on the engine's port: the acceptor cannot bind it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen()

    def undo(self) -> None:
        self.sock.close()


class JournalUnreadable:
    """The journal file is replaced by garbage after the engine was built: its recovery, on the engine
    thread, fails while the client sessions already listen (start() then stops them at once)."""

    def __init__(self, app: Any, db_path: Path) -> None:
        self.db_path = db_path
        self.kept = db_path.with_name(db_path.name + ".kept")
        app.journal.engine.dispose()  # no pooled connection keeps the real file open
        os.replace(db_path, self.kept)
        db_path.write_bytes(b"this is not a database" * 100)

    def undo(self) -> None:
        os.replace(self.kept, self.db_path)


def cycle(bench: Bench, i: int, caplog: pytest.LogCaptureFixture) -> str:
    """One engine's life. Every third one fails to start, alternately on the port and on recovery; every
    seventh is stopped without a logon, right after its start."""
    app = bench.engine()
    fault: PortTaken | JournalUnreadable | None = None
    kind = "ok" if i % 3 else ("port" if i % 6 == 0 else "recovery")
    if kind == "port":
        fault = PortTaken(bench.port)
    elif kind == "recovery":
        fault = JournalUnreadable(app, bench.db_path)
    try:
        if fault is None:
            app.start()
        else:
            with pytest.raises((RuntimeError, fix.RuntimeError), match="bind" if kind == "port" else "recovery") as failed:
                app.start()
            # Kept, as a caller may keep it: pytest holds a failed setup's exception until the garbage
            # collector frees it. Its traceback refers to the engine's QuickFIX objects.
            bench.failures.append(failed)
    finally:
        if fault is not None:
            fault.undo()
    if fault is not None:
        bench.assert_released(f"cycle {i}: failed start ({kind})")
    if kind == "ok" and i % 7:
        caplog.clear()
        assert logon(bench.port) == "A", f"cycle {i}: CLIENT1's logon was not answered"
        assert not [r for r in caplog.records if "unknown session" in r.getMessage()], f"cycle {i}"
    app.stop()
    app.stop()  # a second stop does nothing
    bench.assert_released(f"cycle {i}: after stop")
    return kind


def run_cycles(bench: Bench, caplog: pytest.LogCaptureFixture, n: int) -> None:
    caplog.set_level(logging.WARNING, logger="fix_engine.sessions")
    # a first engine's life, so the baseline counts what stays (QuickFIX's and numpy's one-time threads)
    app = bench.engine()
    app.start()
    assert logon(bench.port) == "A"
    app.stop()
    bench.threads, bench.files = native_threads(), open_files()
    kinds = [cycle(bench, i, caplog) for i in range(n)]
    assert kinds.count("port") and kinds.count("recovery") and kinds.count("ok")


def test_start_stop_cycles(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    run_cycles(bench, caplog, FAST_CYCLES)


@pytest.mark.slow
def test_start_stop_cycles_long(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    run_cycles(bench, caplog, SLOW_CYCLES)


def test_engine_with_the_sessions_of_a_live_one_is_refused(bench: Bench) -> None:
    """A second engine's sessions would silently stay out of QuickFIX's registry (its clients' logons
    answered by the first engine's sessions): it is refused until the first is stopped."""
    first = bench.engine()
    with pytest.raises(RuntimeError, match="already exist in this process"):
        bench.engine()
    first.stop()  # never started: stop() still releases it
    second = bench.engine()
    second.start()
    assert logon(bench.port) == "A"
    second.stop()
    assert fix_settings.registered(bench.settings) == []


def test_engine_cpus_give_the_engine_thread_its_own_cpus(bench: Bench) -> None:
    """[engine] cpus: the engine thread runs there alone - every other thread of the process (QuickFIX's,
    the scheduler's, the one that started it, and those a logon starts later) and the projector process on
    the process's other CPUs."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.skip("needs two CPUs")
    before = {int(t): os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")}
    app = bench.engine()
    app.config = replace(app.config, engine_cpus=(usable[0],))
    others = set(usable[1:])
    try:
        app.start()
        assert logon(bench.port) == "A"  # its connection's thread is started now, by a thread on `others`
        engine_thread = app.engine.native_id
        assert engine_thread is not None and os.sched_getaffinity(engine_thread) == {usable[0]}
        threads = [int(t) for t in os.listdir("/proc/self/task") if int(t) != engine_thread]
        assert len(threads) > 3
        for task in threads:
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                assert os.sched_getaffinity(task) == others, task
        assert app.journal.child_cpus == others
    finally:
        app.stop()
        for task, cpus in before.items():  # this test process's own threads, as they were
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(task, cpus)
    assert os.sched_getaffinity(0) == set(usable)


def venue_cycles(tmp_path: Path, n: int) -> None:
    """The whole stack: the venue simulators stay up while the engine (with its venue initiator) is stopped
    and started again on the same ports, a FixClient logging on to each engine; every other engine first
    fails to start (its port taken), after its venue sessions have logged on."""
    gen: Iterator[Any] = run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}")
    st = next(gen)
    try:
        settings = fix_settings.load(ROOT / "sessions.cfg")  # the engine's sessions, the venues' too
        client = fix.SessionID(codec.FIX44, "CLIENT1", "FIXOMS")
        failures = []
        threads = files = 0
        for i in range(n):
            c = st.client()
            assert c.logged_on, f"cycle {i}"
            c.stop()
            st.clients.remove(c)
            st.stop_engine()
            assert not fix.Session.doesSessionExist(client), f"cycle {i}: the client's session left registered"
            if i == 0:
                threads, files = native_threads(), open_files()
            assert_released(f"cycle {i}: after stop", settings, st.acceptor_port, threads, files)
            if i % 2:
                taken = PortTaken(st.acceptor_port)
                try:
                    with pytest.raises(fix.RuntimeError, match="bind") as failed:
                        st.start_engine()
                    failures.append(failed)
                finally:
                    taken.undo()
                st.stop_engine()
                assert_released(f"cycle {i}: failed start", settings, st.acceptor_port, threads, files)
            st.start_engine()
    finally:
        next(gen, None)


def test_start_stop_with_venues(tmp_path: Path) -> None:
    venue_cycles(tmp_path, VENUE_CYCLES)


@pytest.mark.slow
def test_start_stop_with_venues_long(tmp_path: Path) -> None:
    venue_cycles(tmp_path, SLOW_VENUE_CYCLES)


def test_a_logon_waiting_at_a_standbys_port_is_answered_by_the_engine_it_hands_the_port_to(bench: Bench) -> None:
    """fixoms.held_ports: an HA standby listens on its client port before it takes over. While the primary
    is on time it refuses (a client connecting is reset at once); once it holds, a client's connection and
    Logon wait in the backlog, and the engine that takes the socket over (SocketAcceptFd) answers that
    Logon. Its stop closes the socket like one of its own."""
    from fixoms.app import EngineApp
    from fixoms.held_ports import HeldPorts

    assert fix_settings.quickfix_accept_fd(), f"QuickFIX {fix_settings.quickfix_version()} lacks SocketAcceptFd"
    bench.threads, bench.files = native_threads(), open_files()
    held = HeldPorts([bench.port], grace_s=0.0)
    assert held.ports == [bench.port] and not held.holding
    with socket.create_connection(("127.0.0.1", bench.port), timeout=10) as refused:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # reset before the Logon went: refused too
            refused.sendall(logon_message("CLIENT1"))
        assert answer(refused) == "", "a standby whose primary is on time must not keep a client waiting"
    held.hold(True)
    waiting = socket.create_connection(("127.0.0.1", bench.port), timeout=30)  # in the backlog: nobody accepts
    waiting.sendall(logon_message("CLIENT1"))
    app = EngineApp(bench.config, fix_settings.SessionOverrides(var_dir=bench.tmp / "engine", acceptor_port=bench.port,
                                                                accept_fds=held.hand_over()))
    try:
        app.start()
        assert answer(waiting) == "A", "the Logon that waited for the takeover was not answered"
        assert logon(bench.port, "DROPCOPY1") == "A", "the engine does not accept new connections on the port"
    finally:
        waiting.close()
        app.stop()
    held.close()
    bench.assert_released("after the engine that took the standby's port over stopped")
