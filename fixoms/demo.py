"""`fixoms demo`: two simulated venues, the engine and scripted clients on free loopback ports.

Sends a handful of orders (a fill, a partial fill then cancel, a resting order, a reject, a FIX 4.2
client's fill), prints the blotter and each client's ExecutionReports, and shuts everything down.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fix_engine import codec
from fix_engine.client import FixClient, Msg
from fix_engine.settings import SessionOverrides
from fixoms.app import EngineApp
from fixoms.blotter import blotter_table, list_orders
from fixoms.config import Config
from fixoms.netutil import free_port
from oms.enums import ExecType, OrdStatus
from venues.simulator import SimulatorServer


def _name(enum: type[ExecType] | type[OrdStatus], value: str | None) -> str:
    try:
        return enum(value).name if value else ""
    except ValueError:
        return value or ""


def _flow_table(title: str, msgs: list[Msg]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("ClOrdID", "ExecType", "OrdStatus", "OrderQty", "LastQty", "LastPx", "LastMkt", "CumQty",
                "LeavesQty", "AvgPx", "Text"):
        t.add_column(col)
    for m in msgs:
        if m.get(codec.MSG_TYPE) == codec.CANCEL_REJECT:
            t.add_row(m.get(codec.CL_ORD_ID, ""), "CANCEL REJECT", _name(OrdStatus, m.get(codec.ORD_STATUS)),
                      "", "", "", "", "", "", "", m.get(codec.TEXT, ""))
            continue
        et = m.get(codec.EXEC_TYPE)
        t.add_row(
            m.get(codec.CL_ORD_ID, ""), _name(ExecType, et), _name(OrdStatus, m.get(codec.ORD_STATUS)),
            m.get(codec.ORDER_QTY, ""), m.get(codec.LAST_QTY, ""), m.get(codec.LAST_PX, ""),
            m.get(codec.LAST_MKT, ""), m.get(codec.CUM_QTY, ""), m.get(codec.LEAVES_QTY, ""), m.get(codec.AVG_PX, ""), m.get(codec.TEXT, ""),
        )
    return t


def run_demo(config: Config, console: Console, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fixoms-demo-"))
    started = time.monotonic()
    venue_ports = {v.name: free_port() for v in config.sim_venues}
    acceptor_port = free_port()
    prices = {s: p for s, p in config.reference_prices.items()}
    sims = [
        SimulatorServer(v.name, venue_ports[v.name], workdir / "venues" / v.name, v.seed, prices or None)
        for v in config.sim_venues
    ]
    cfg = replace(config, database_url=f"sqlite:///{workdir / 'demo.db'}", var_dir=workdir / "engine",
                  admin_socket=workdir / "admin.sock", metrics_port=None)
    from oms.queries import create_schema, make_engine, set_credential

    db = make_engine(cfg.database_url)
    create_schema(db)
    set_credential(db, "CLIENT1", "CLIENT1", "demo-password", frozenset(), "demo")
    set_credential(db, "CLIENT2", "CLIENT2", "unused", frozenset({"127.0.0.1"}), "demo")
    db.dispose()
    app = EngineApp(cfg, SessionOverrides(var_dir=workdir / "engine", acceptor_port=acceptor_port,
                                          venue_ports=venue_ports))
    clients: list[FixClient] = []
    finished = False
    try:
        for sim in sims:
            sim.start()
        app.start()
        if not app.wait_venues(15):
            console.print("[red]venues did not log on[/red]")
            return 1
        console.print(f"engine up: acceptor 127.0.0.1:{acceptor_port}, venues " +
                      ", ".join(f"{n}@{p}" for n, p in venue_ports.items()))
        c1 = FixClient("CLIENT1", acceptor_port, workdir, codec.FIX44,
                       logon_fields=[(codec.USERNAME, "CLIENT1"), (codec.PASSWORD, "demo-password")]).start()
        clients.append(c1)  # stopped in `finally` even if the second client fails to log on
        c2 = FixClient("CLIENT2", acceptor_port, workdir, codec.FIX42).start()
        clients.append(c2)
        flows: list[tuple[str, FixClient, str]] = []

        ref = {s: prices.get(s, Decimal("100")) for s in config.symbols}
        # 1. a market order that fills
        a = c1.new_order("AAPL", "1", 100, ord_type="1")
        c1.wait_report(a, status=OrdStatus.FILLED.value)
        flows.append(("market buy 100 AAPL: filled", c1, a))
        # 2. a limit order bigger than the touch: partial fill, rests, then cancel
        b = c1.new_order("MSFT", "1", 2000, price=ref["MSFT"] + Decimal("0.02"))
        c1.wait_report(b, status=OrdStatus.PARTIALLY_FILLED.value)
        x = c1.cancel(b, "MSFT", "1", 2000)
        c1.wait_report(x, status=OrdStatus.CANCELED.value)
        flows.append(("limit buy 2000 MSFT: partial fill, then cancel", c1, b))
        # 3. a limit order away from the market: rests
        r = c1.new_order("IBM", "2", 300, price=ref["IBM"] + Decimal("5"))
        c1.wait_report(r, status=OrdStatus.NEW.value)
        flows.append(("limit sell 300 IBM away from the market: resting", c1, r))
        # 4. an unknown symbol: rejected with a reason
        z = c1.new_order("XYZ", "1", 100, ord_type="1")
        c1.wait_report(z, status=OrdStatus.REJECTED.value)
        flows.append(("market buy 100 XYZ: rejected", c1, z))
        # 5. a FIX 4.2 client's market sell
        s = c2.new_order("TSLA", "2", 200, ord_type="1")
        c2.wait_report(s, status=OrdStatus.FILLED.value)
        flows.append(("FIX 4.2 client: market sell 200 TSLA: filled", c2, s))

        for title, client, cl_ord_id in flows:
            msgs = client.reports_for(cl_ord_id)
            console.print(_flow_table(f"{client.comp_id} {title}", msgs))
        # The order tables trail the journal's log (the projector may run in a process of its own):
        # project everything appended so far, or the blotter misses the last orders.
        app.journal.sync()
        console.print(blotter_table(list_orders(app.journal.engine)))
        finished = True
    finally:
        console.print("shutting down: clients, engine, venues")
        for client in clients:
            client.stop()
        app.stop()
        for sim in sims:
            sim.stop()
        if keep:
            console.print(f"demo files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    # Only now, and only if every part let go of its sessions (a failed stop raised above).
    left = [sim.app.name for sim in sims if sim.acceptor is not None]
    if left:
        console.print(f"[red]venue simulators {', '.join(left)} did not shut down cleanly[/red]")
        return 1
    console.print(f"demo finished in {time.monotonic() - started:.1f}s; all sessions shut down cleanly")
    return 0 if finished else 1
