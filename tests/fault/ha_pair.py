"""A primary/standby pair for the HA fault tests: two `fixoms run --standby` processes (each with its own
folder, acceptor port and admin socket) on one PostgreSQL journal, two venue simulators in this process,
and clients whose QuickFIX failover list names both engines."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from fix_engine import codec
from fix_engine.client import FixClient
from fixoms.netutil import free_port
from oms.schema import children_t, orders_t
from tests.conftest import PG_URL, ROOT, listed, logon_fields, reset_pg, seed_credentials
from venues.simulator import SimulatorServer

# Short leases so a takeover takes about a second; the venue sessions' heartbeat is short too, so that
# a venue drops a paused primary's connection (QuickFIX: no message for 2.4 heartbeats) in seconds.
HA_TOML = "[ha]\nenabled = true\nlease_s = 1.0\nrenew_s = 0.25\npoll_s = 0.1\n"


@dataclass
class Node:
    name: str
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "fixoms.toml"

    def log(self) -> str:
        path = self.folder / "engine.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False


@dataclass
class Pair:
    tmp: Path
    nodes: list[Node] = field(default_factory=list)
    sims: dict[str, SimulatorServer] = field(default_factory=dict)
    clients: list[FixClient] = field(default_factory=list)
    venue_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp: Path) -> Pair:
        reset_pg()
        seed_credentials(PG_URL)
        pair = cls(tmp, venue_ports={"VENUE-A": free_port(), "VENUE-B": free_port()})
        for i, (name, port) in enumerate(pair.venue_ports.items()):
            sim = SimulatorServer(name, port, tmp / "venues" / name, i + 1, listed(name))
            pair.sims[name] = sim
            sim.start()
        for name in ("a", "b"):
            node = Node(name, tmp / name, free_port())
            node.folder.mkdir(parents=True)
            pair._write_config(node)
            pair.nodes.append(node)
        return pair

    def _write_config(self, node: Node) -> None:
        cfg = (ROOT / "sessions.cfg").read_text()
        cfg = cfg.replace("SocketAcceptPort=9878", f"SocketAcceptPort={node.port}")
        cfg = cfg.replace("HeartBtInt=30", "HeartBtInt=1")
        for name, default in (("VENUE-A", 9881), ("VENUE-B", 9882)):
            cfg = cfg.replace(f"SocketConnectPort={default}", f"SocketConnectPort={self.venue_ports[name]}")
        (node.folder / "sessions.cfg").write_text(cfg)
        toml = (ROOT / "fixoms.toml").read_text()
        toml, n = re.subn(r'(?m)^url = "sqlite:///var/fixoms.db"', f'url = "{PG_URL}"', toml)
        assert n == 1
        toml = re.sub(r"(?m)^port = 9464$", "port = 0", toml)
        # no per-session rate limit: the load tests send faster than a client would
        toml = toml.replace("[risk]\n", '[risk]\nsession_submit_rate = "none"\nsession_modify_rate = "none"\n', 1)
        toml = re.sub(r"(?m)^session_(submit|modify)_rate = 100 .*$", "", toml)
        node.config.write_text(toml + "\n" + HA_TOML)

    # --- engine processes ----------------------------------------------------------------------------
    def start(self, node: Node, standby: bool = True) -> Node:
        assert not node.alive
        with open(node.folder / "engine.log", "ab") as log:
            node.proc = subprocess.Popen(
                [sys.executable, "-m", "fixoms.cli", "--config", str(node.config), "--log-level", "INFO", "run",
                 *(["--standby"] if standby else [])],
                cwd=node.folder, stdout=subprocess.DEVNULL, stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return node

    def wait_primary(self, node: Node, timeout: float = 30.0) -> None:
        """Until `node` listens for clients and both its venues logged on."""
        deadline = time.monotonic() + timeout
        while not node.listening():
            assert node.alive, node.log()[-3000:]
            assert time.monotonic() < deadline, f"{node.name} did not become the primary\n{node.log()[-3000:]}"
            time.sleep(0.05)
        while not _venues_up(node):
            assert time.monotonic() < deadline, f"{node.name}: venues did not log on\n{node.log()[-3000:]}"
            time.sleep(0.05)

    def wait_standby(self, node: Node, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while "standing by" not in node.log():
            assert node.alive, node.log()[-3000:]
            assert time.monotonic() < deadline, f"{node.name} did not stand by\n{node.log()[-3000:]}"
            time.sleep(0.05)

    def client(self, comp_id: str = "CLIENT1", first: Node | None = None, begin: str = codec.FIX44,
               **kw: Any) -> FixClient:
        first = first or self.nodes[0]
        others = [("127.0.0.1", n.port) for n in self.nodes if n is not first]
        c = FixClient(comp_id, first.port, self.tmp, begin, logon_fields=logon_fields(comp_id),
                      failover=others, heart_bt_int=1, **kw).start(wait=20)
        self.clients.append(c)
        return c

    def ha_status(self, node: Node) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "fixoms.cli", "--config", str(node.config), "ha", "status",
                               "--json"], capture_output=True, text=True, timeout=60, cwd=node.folder,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def close(self) -> None:
        for c in self.clients:
            c.stop(force=True)
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGTERM)
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)
        for sim in self.sims.values():
            sim.stop()

    # --- what the journal holds ----------------------------------------------------------------------
    def check_journal(self, acked: set[tuple[str, str]], clients: list[FixClient],
                      venue: str = "VENUE-B") -> Decimal:
        """No acknowledged order lost (`acked`: (CompID, ClOrdID)), every fill once (journal = venue, child
        by child), no overfill, and each client's fills add up to the journal's. Returns the total filled."""
        db = create_engine(PG_URL)
        try:
            with db.connect() as conn:
                orders = {(r.session, r.cl_ord_id): r for r in conn.execute(select(orders_t))}
                children = list(conn.execute(select(children_t)))
        finally:
            db.dispose()
        assert acked <= set(orders), f"acknowledged orders lost: {sorted(acked - set(orders))}"
        by_comp_id = {c.comp_id: c for c in clients}
        sim = self.sims[venue].app
        for ch in children:
            vid = sim.by_cl_ord_id.get(("FIXOMS", ch.child_id))
            venue_cum = sim.orders[vid].cum if vid is not None else 0
            assert ch.cum_qty == venue_cum, ch.child_id
        total = Decimal(0)
        for (session, cl), row in orders.items():
            assert row.cum_qty <= row.order_qty, f"{cl} overfilled"
            child_cum = sum((ch.cum_qty for ch in children if ch.order_id == row.order_id), Decimal(0))
            assert row.cum_qty == child_cum, cl
            total += row.cum_qty
            client = by_comp_id[session]
            # a fill's ExecType: Trade (F) in FIX 4.4; Partial fill (1) or Fill (2) in FIX 4.2, which has no F
            # and answers a status request with ExecTransType Status (3) and the order's state as ExecType
            fill_types = ("F",) if client.begin_string == codec.FIX44 else ("1", "2")
            fills = {m[codec.EXEC_ID]: m for m in client.received
                     if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT and m.get(codec.CL_ORD_ID) == cl
                     and m.get(codec.EXEC_TYPE) in fill_types and m.get(codec.EXEC_TRANS_TYPE) != "3"}
            got = sum(Decimal(m[codec.LAST_QTY]) for m in fills.values())
            assert got == row.cum_qty, f"{session} {cl}: the client's fills add up to {got}, the journal's {row.cum_qty}"
        return total


def _venues_up(node: Node) -> bool:
    log = node.log()
    start = log.rfind("took the lease")
    tail = log[start:] if start >= 0 else ""
    return "logon VENUE-A" in tail and "logon VENUE-B" in tail
