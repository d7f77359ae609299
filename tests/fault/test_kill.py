"""SIGKILL the engine process while orders work and fills arrive; restart it; nothing acknowledged is
lost, every fill counts exactly once, and the client's view agrees with the venue's.

The engine runs as a real `fixoms run` subprocess; the venue simulators and the client run here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from fix_engine import codec
from fix_engine.client import FixClient
from fixoms.netutil import free_port
from oms.enums import Side
from oms.schema import children_t, orders_t
from tests.conftest import ROOT, listed, logon_fields, seed_credentials
from tests.fault.test_fuzz import write_config
from venues.simulator import SimulatorServer


def start_engine(config: Path, port: int) -> subprocess.Popen[bytes]:
    with open(config.parent / "engine.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fixoms.cli", "--config", str(config), "--log-level", "INFO", "run"],
            cwd=config.parent, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert proc.poll() is None, (config.parent / "engine.log").read_text()[-2000:]
            time.sleep(0.1)
    raise TimeoutError("engine did not listen")


class Feeder(threading.Thread):
    """Another participant selling `qty` into our bids every `every` seconds, at the venue: fills keep
    arriving while the engine dies."""

    def __init__(self, sim: SimulatorServer, symbol: str = "IBM", qty: int = 30, every: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.sim, self.symbol, self.qty, self.every = sim, symbol, qty, every
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            self.sim.app.house_order(self.symbol, Side.SELL, Decimal("150.00"), self.qty)


@pytest.mark.parametrize("kills", [2])
def test_sigkill_while_fills_arrive(tmp_path: Path, kills: int) -> None:
    venue_ports = {"VENUE-A": free_port(), "VENUE-B": free_port()}
    acceptor = free_port()
    sims = {n: SimulatorServer(n, p, tmp_path / "venues" / n, 1, listed(n)) for n, p in venue_ports.items()}
    for s in sims.values():
        s.start()
    config = write_config(tmp_path, acceptor, venue_ports, f"sqlite:///{tmp_path}/journal.db")
    seed_credentials(f"sqlite:///{tmp_path}/journal.db")
    proc = start_engine(config, acceptor)
    client = FixClient("CLIENT1", acceptor, tmp_path, codec.FIX44,
                       logon_fields=logon_fields("CLIENT1")).start(wait=20)
    feeder = Feeder(sims["VENUE-B"])
    acked: set[str] = set()
    try:
        for round_ in range(kills + 1):
            # different quantities: identical orders within a second are refused as duplicates
            sent = [client.new_order("IBM", "1", 200 + 15 * round_ + i, price="150.00") for i in range(15)]
            for cl in sent:
                client.wait_report(cl, status="0", timeout=20)
                acked.add(cl)
            if round_ == 0:
                feeder.start()
            time.sleep(0.4)
            if round_ < kills:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                time.sleep(0.3)  # the venue keeps filling while we are dead
                proc = start_engine(config, acceptor)
                assert client.app.logon_event.wait(20), "client did not log on again"
        feeder.stop_event.set()
        feeder.join()
        time.sleep(1.0)
        for cl in acked:  # ask, in case a report was in flight when we stopped looking
            client.status(cl, "IBM", "1")
        client.drain(1.5)
    finally:
        feeder.stop_event.set()
        client.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        for s in sims.values():
            s.stop()

    db = create_engine(f"sqlite:///{tmp_path}/journal.db")
    with db.connect() as conn:
        orders = {r.cl_ord_id: r for r in conn.execute(select(orders_t))}
        children = list(conn.execute(select(children_t)))
    # every acknowledged order is in the journal
    assert acked <= set(orders)
    # every fill exactly once: the journal agrees with the venue, child by child
    venue = sims["VENUE-B"].app
    for ch in children:
        vid = venue.by_cl_ord_id.get(("FIXOMS", ch.child_id))
        venue_cum = venue.orders[vid].cum if vid is not None else 0
        assert ch.cum_qty == venue_cum, ch.child_id
    total_filled = Decimal(0)
    for cl, row in orders.items():
        assert row.cum_qty <= row.order_qty
        child_cum = sum((ch.cum_qty for ch in children if ch.order_id == row.order_id), Decimal(0))
        assert row.cum_qty == child_cum
        total_filled += row.cum_qty
        # the client's view: its fills (de-duplicated by ExecID) add up to the journal's CumQty
        reports = {m[codec.EXEC_ID]: m for m in client.received
                   if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT and m.get(codec.CL_ORD_ID) == cl
                   and m.get(codec.EXEC_TYPE) == "F"}
        assert sum(Decimal(m[codec.LAST_QTY]) for m in reports.values()) == row.cum_qty, cl
        cums = [Decimal(m[codec.CUM_QTY]) for m in sorted(reports.values(), key=lambda m: int(m[codec.EXEC_ID].rsplit("-", 1)[1]))]
        assert cums == sorted(cums)
    assert total_filled > 0, "the feeder produced no fills: the test proved nothing"
