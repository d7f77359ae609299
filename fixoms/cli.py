"""The `fixoms` command line. Read commands print tables (or `--json`); errors are one line and a
non-zero exit code, never a traceback (set FIXOMS_DEBUG=1 to see one)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from fixoms import config as config_mod

console = Console()
err = Console(stderr=True)


class Ctx:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: config_mod.Config | None = None

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            try:
                self._config = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Its INFO lines repeat every second (the GTD poll): keep them out unless debugging.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="FIXOMS_CONFIG",
              help="fixoms.toml (default: ./fixoms.toml)")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """fixoms: a broker's FIX order management engine."""
    _setup_logging(log_level)
    ctx.obj = Ctx(config_path)


@cli.command("init-db")
@click.option("--url", help="database URL (default: database.url from the config)")
@click.pass_obj
def init_db(obj: Ctx, url: str | None) -> None:
    """Create the journal's tables (idempotent)."""
    from oms.journal import Journal

    url = url or obj.config.database_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    journal = Journal.open(url, obj.config.instance)
    try:
        journal.create_schema()
    except Exception as exc:
        raise click.ClickException(f"cannot create schema at {url}: {exc.__class__.__name__}: {exc}") from None
    console.print(f"journal ready at {url}")


@cli.command()
@click.pass_obj
def run(obj: Ctx) -> None:
    """Run the engine: client acceptor, venue initiators, engine thread. Stops on SIGINT/SIGTERM."""
    from fixoms.app import EngineApp

    cfg = obj.config
    if cfg.database_url.startswith("sqlite:///"):
        Path(cfg.database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    app = EngineApp(cfg)
    app.start()
    console.print(f"fixoms {cfg.instance} running (journal {cfg.database_url}); Ctrl-C to stop")
    try:
        _wait_for_signal()
    finally:
        app.stop()
        console.print("stopped")


@cli.command("venue-sim")
@click.option("--name", required=True, help="venue CompID, e.g. VENUE-A")
@click.option("--port", required=True, type=click.IntRange(1, 65535))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--var-dir", type=click.Path(file_okay=False), help="store/log folder (default: <var>/venues/NAME)")
@click.pass_obj
def venue_sim(obj: Ctx, name: str, port: int, seed: int, var_dir: str | None) -> None:
    """Run a simulated venue (FIX 4.4 acceptor with a price-time book per symbol)."""
    from venues.simulator import SimulatorServer

    cfg = obj.config
    folder = Path(var_dir) if var_dir else cfg.var_dir / "venues" / name
    server = SimulatorServer(name, port, folder, seed, dict(cfg.reference_prices) or None)
    server.start()
    console.print(f"venue {name} listening on port {port}; Ctrl-C to stop")
    try:
        _wait_for_signal()
    finally:
        server.stop()


@cli.command()
@click.option("--keep", is_flag=True, help="keep the demo's temporary files")
@click.pass_obj
def demo(obj: Ctx, keep: bool) -> None:
    """Start two venue simulators, the engine and scripted clients; send orders; print what happened."""
    from fixoms.demo import run_demo

    sys.exit(run_demo(obj.config, console, keep))


@cli.group()
def orders() -> None:
    """The blotter: orders as the journal has them."""


def _db(obj: Ctx) -> Any:
    from oms.journal import make_engine

    return make_engine(obj.config.database_url)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@orders.command("list")
@click.option("--open", "open_only", is_flag=True, help="only working orders")
@click.option("--account")
@click.option("--symbol")
@click.option("--session")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def orders_list(obj: Ctx, open_only: bool, account: str | None, symbol: str | None, session: str | None,
                as_json: bool) -> None:
    """List orders (the blotter)."""
    from fixoms.blotter import list_orders
    from fixoms.demo import blotter_table

    rows = list_orders(_db(obj), open_only=open_only, account=account, symbol=symbol, session=session)
    if as_json:
        _print_json(rows)
    else:
        console.print(blotter_table(rows, f"{len(rows)} orders"))


@orders.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def orders_show(obj: Ctx, order_id: str, as_json: bool) -> None:
    """One order: its children and every journaled event."""
    from rich.table import Table

    from fixoms.blotter import show_order

    data = show_order(_db(obj), order_id)
    if data is None:
        raise click.ClickException(f"no order {order_id}")
    if as_json:
        _print_json(data)
        return
    for key in ("order_id", "session", "account", "cl_ord_id", "symbol", "side", "order_qty", "price", "status",
                "cum_qty", "leaves_qty", "avg_px", "text"):
        console.print(f"{key:>11}: {data[key]}")
    t = Table(title="children", title_justify="left")
    for col in ("child_id", "venue", "qty", "price", "cum_qty", "status", "venue_order_id", "text"):
        t.add_column(col)
    for ch in data["children"]:
        t.add_row(*(ch[k] for k in ("child_id", "venue", "qty", "price", "cum_qty", "status", "venue_order_id", "text")))
    console.print(t)
    t = Table(title="events", title_justify="left")
    for col in ("seq", "ts", "kind", "payload"):
        t.add_column(col)
    for e in data["events"]:
        payload = {k: v for k, v in e["payload"].items() if k != "order_id"}
        t.add_row(str(e["seq"]), e["ts"], e["kind"], json.dumps(payload))
    console.print(t)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        err.print(f"error: {exc.format_message()}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("FIXOMS_DEBUG"):
            raise
        err.print(f"error: {exc.__class__.__name__}: {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
