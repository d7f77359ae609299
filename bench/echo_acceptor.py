"""The baseline for bench/e2e.py: a bare QuickFIX SocketAcceptor (one thread for all its sessions;
--threaded: a ThreadedSocketAcceptor) whose Python Application answers each NewOrderSingle. Each reply
is built in Python: `fromApp` (a SWIG callback into Python, holding the GIL) copies the message with
`toString()`, finds the tags it needs with string searches, formats an ExecutionReport New as a string,
parses it back into a `quickfix.Message` and hands it to `Session.sendToTarget`; with --fill it does the
same again for a second report that fills the order (--fill-ioc: only for IOC orders, TimeInForce 3;
other orders get the New alone, as a resting order at a venue would). QuickFIX's C++ does the socket,
framing, sequence numbers, FileStore and FileLog. So this is not a C++ echo: it measures one QuickFIX
session thread plus a few tens of microseconds of Python per reply, on this machine, with no journal, no
risk, no routing and no venue hop.

Same session settings as the engine's acceptor (the [DEFAULT] of sessions.cfg: FileStore, FileLog, the
FIX 4.4 data dictionary) plus SocketNodelay=Y (QuickFIX 1.16 leaves Nagle on: a New and a fill sent back
to back then wait for the peer's delayed ACK, ~40 ms), sessions CLIENT1..CLIENTn with SenderCompID
FIXOMS, so the load generator talks to it exactly as it talks to the engine. It keeps no order state:
cancels and other messages are not answered.

Run: .venv/bin/python bench/echo_acceptor.py --port 9878 [--sessions 4] [--fill | --fill-ioc] [--threaded]
                                             [--var-dir DIR]
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fix_engine.quickfix_import import fix  # noqa: E402
from fix_engine.settings import resolve_dictionary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOH = "\x01"
log = logging.getLogger("echo")


def field(raw: str, tag: str) -> str:
    """The value of `tag` (given as "\\x01NN=") in a message string; "" when absent."""
    i = raw.find(tag)
    if i < 0:
        return ""
    i += len(tag)
    return raw[i : raw.find(SOH, i)]


class Echo(fix.Application):  # type: ignore[misc]
    def __init__(self, fill: bool, fill_ioc: bool = False) -> None:
        super().__init__()
        self.fill = fill
        self.fill_ioc = fill_ioc
        self.ids = itertools.count(1)
        self.answered = 0

    def onCreate(self, sid: Any) -> None:
        pass

    def onLogon(self, sid: Any) -> None:
        log.info("logon %s", sid.toString())

    def onLogout(self, sid: Any) -> None:
        pass

    def toAdmin(self, message: Any, sid: Any) -> None:
        pass

    def fromAdmin(self, message: Any, sid: Any) -> None:
        pass

    def toApp(self, message: Any, sid: Any) -> None:
        pass

    def fromApp(self, message: Any, sid: Any) -> None:
        # Nothing may escape a QuickFIX callback.
        try:
            raw = message.toString()
            if field(raw, f"{SOH}35=") != "D":
                return
            n = next(self.ids)
            cl, symbol, side, qty = (field(raw, f"{SOH}{t}=") for t in (11, 55, 54, 38))
            px = field(raw, f"{SOH}44=") or "0"
            head = f"8=FIX.4.4{SOH}9=0{SOH}35=8{SOH}37=E{n}{SOH}11={cl}{SOH}55={symbol}{SOH}54={side}{SOH}38={qty}{SOH}"
            new = f"{head}17=N{n}{SOH}150=0{SOH}39=0{SOH}151={qty}{SOH}14=0{SOH}6=0{SOH}10=000{SOH}"
            fix.Session.sendToTarget(fix.Message(new, False), sid)
            if self.fill or (self.fill_ioc and field(raw, f"{SOH}59=") == "3"):
                done = (f"{head}17=F{n}{SOH}150=F{SOH}39=2{SOH}32={qty}{SOH}31={px}{SOH}151=0{SOH}14={qty}{SOH}"
                        f"6={px}{SOH}10=000{SOH}")
                fix.Session.sendToTarget(fix.Message(done, False), sid)
            self.answered += 1
        except Exception:
            log.exception("echo failed")


def write_settings(var_dir: Path, port: int, sessions: int) -> Path:
    """The engine's [DEFAULT] (sessions.cfg) with our paths, and CLIENT1..n as FIX 4.4 acceptor sessions."""
    default = re.split(r"(?m)^\[SESSION\]", (ROOT / "sessions.cfg").read_text())[0]  # not the comments' mentions
    lines = [line for line in default.splitlines() if not line.startswith(("FileStorePath", "FileLogPath"))]
    lines += [f"FileStorePath={var_dir / 'store'}", f"FileLogPath={var_dir / 'log'}", "SocketNodelay=Y", ""]
    for i in range(1, sessions + 1):
        lines += ["[SESSION]", "ConnectionType=acceptor", "BeginString=FIX.4.4", f"TargetCompID=CLIENT{i}",
                  f"SocketAcceptPort={port}", f"DataDictionary={resolve_dictionary('FIX44.xml')}", ""]
    path = var_dir / "echo.cfg"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=4)
    fills = parser.add_mutually_exclusive_group()
    fills.add_argument("--fill", action="store_true", help="also answer with an ExecutionReport Trade (filled)")
    fills.add_argument("--fill-ioc", action="store_true", help="the same, for IOC orders (TimeInForce 3) only")
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--threaded", action="store_true",
                        help="ThreadedSocketAcceptor (a thread per session, as the engine runs) instead of SocketAcceptor")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="echo-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    settings = fix.SessionSettings(str(write_settings(var_dir, args.port, args.sessions)))
    app = Echo(args.fill, args.fill_ioc)
    store, logs = fix.FileStoreFactory(settings), fix.FileLogFactory(settings)
    acceptor = (fix.ThreadedSocketAcceptor if args.threaded else fix.SocketAcceptor)(app, store, settings, logs)
    acceptor.start()
    fills_text = ", with fills" if args.fill else ", fills for IOC orders" if args.fill_ioc else ""
    log.info("echo acceptor on port %d (%d sessions%s)", args.port, args.sessions, fills_text)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    log.info("answered %d orders", app.answered)
    # 1.16's SocketAcceptor.stop() races its own thread (see fixoms/app.py): a benchmark tool just exits.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
