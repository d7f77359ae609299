"""The `fixoms` command line. Read commands print tables (or `--json`); errors are one line and a
non-zero exit code, never a traceback (set FIXOMS_DEBUG=1 to see one).

Commands that act on a running engine go through its admin socket (fixoms.admin), which audits them
with the caller's OS user; they ask for confirmation unless `--yes` and print before -> after. Read
commands that only need the journal (orders, positions, audit) read the database directly."""

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

from fixoms import config as config_mod
from fixoms.cli_common import (
    SESSION_CHANGE,
    Ctx,
    cell,
    configured_sessions,
    confirm,
    console,
    describe_change,
    err,
    journal_db,
    json_option,
    print_json,
    session_summary,
    table,
    yes_option,
)
from fixoms.watch import watch


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
@click.option("--admin-socket", type=click.Path(dir_okay=False),
              help="the running engine's admin socket (default: [engine] admin_socket, or FIXOMS_ADMIN_SOCKET)")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str, admin_socket: str | None) -> None:
    """fixoms: a broker's FIX order management engine."""
    _setup_logging(log_level)
    ctx.obj = Ctx(config_path, admin_socket, log_level)


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
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="text lines, or one JSON object a line (default: [logging] format, else text)")
@click.option("--log-file", type=click.Path(dir_okay=False), help="log to this file (default: [logging] file, "
              "else stderr); the rotate_logs job rotates it")
@click.option("--standby", is_flag=True, help="high availability (PostgreSQL): follow the journal and take "
              "over when the primary's lease lapses; as [ha] enabled, the lease is taken at once if free")
@click.pass_obj
def run(obj: Ctx, log_format: str | None, log_file: str | None, standby: bool) -> None:
    """Run the engine: client acceptor, venue initiators, engine thread. Stops on SIGINT/SIGTERM."""
    from dataclasses import replace

    from fixoms import collector, logfmt
    from fixoms.admin import SOCKET_ENV
    from fixoms.app import EngineApp

    cfg = obj.config
    cfg = replace(cfg, log_format=log_format or cfg.log_format,
                  log_file=Path(log_file) if log_file else cfg.log_file, ha_enabled=cfg.ha_enabled or standby)
    logfmt.setup(obj.log_level, cfg.log_format, cfg.log_file)
    if obj.admin_socket:
        os.environ[SOCKET_ENV] = obj.admin_socket  # this process is the engine: serve where we were told
    if cfg.ha_enabled:
        from fixoms.cli_ha import run_ha

        run_ha(cfg)
        return
    if cfg.database_url.startswith("sqlite:///"):
        Path(cfg.database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    app = EngineApp(cfg)
    app.start()
    collector.enable()
    console.print(f"fixoms {cfg.instance} running (journal {cfg.database_url}); Ctrl-C to stop")
    if app.admin is None:
        err.print("warning: the admin socket did not start (see the log): operators cannot reach this engine")
    else:
        console.print(f"admin socket {app.admin.path}")
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
@click.option("--activity-ms", type=click.FloatRange(0), default=None,
              help="background orders arrive/cancel this often (default: [sim_venues.NAME] activity_ms, else 0)")
@click.pass_obj
def venue_sim(obj: Ctx, name: str, port: int, seed: int, var_dir: str | None, activity_ms: float | None) -> None:
    """Run a simulated venue (FIX 4.4 acceptor with a C price-time book per symbol, publishing market data)."""
    from venues.simulator import SimulatorServer

    cfg = obj.config
    spec = next((v for v in cfg.sim_venues if v.name == name), None)
    folder = Path(var_dir) if var_dir else cfg.var_dir / "venues" / name
    prices = dict(cfg.reference_prices)
    if spec is not None and spec.symbols:
        prices = {s: p for s, p in prices.items() if s in spec.symbols}
    server = SimulatorServer(
        name, port, folder, seed, prices or None,
        levels=spec.levels if spec else 5, latency_ms=spec.latency_ms if spec else 0.0,
        activity_ms=activity_ms if activity_ms is not None else (spec.activity_ms if spec else 0.0),
    )
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


# `orders list` shows this many orders unless told otherwise (--limit N, --all): a day's blotter can hold
# tens of thousands, and a table of them all takes seconds to build and nobody reads it.
ORDERS_LIMIT = 100


@orders.command("list")
@click.option("--open", "open_only", is_flag=True, help="only working orders")
@click.option("--account")
@click.option("--symbol")
@click.option("--session")
@click.option("--venue", help="orders with a child at this venue")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help=f"show the newest N matching orders  [default: {ORDERS_LIMIT}]")
@click.option("--all", "show_all", is_flag=True, help="show every matching order (no limit)")
@click.option("--watch", "watching", is_flag=True, help="redraw every --interval seconds until Ctrl-C")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), help="with --watch: stop after this many redraws")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def orders_list(obj: Ctx, open_only: bool, account: str | None, symbol: str | None, session: str | None,
                venue: str | None, limit: int | None, show_all: bool, watching: bool, interval: float,
                count: int | None, as_json: bool) -> None:
    """List orders (the blotter), read from the journal: works with the engine stopped too. Shows the
    newest 100 matching orders (oldest first) and says how many match in all; --limit N or --all for more."""
    from datetime import datetime

    from fixoms.blotter import blotter_table, page_orders

    if show_all and limit is not None:
        raise click.UsageError("--limit and --all exclude each other")
    cut = None if show_all else (limit or ORDERS_LIMIT)
    db = journal_db(obj)
    noted = False

    def frame() -> tuple[list[dict[str, Any]], Any]:
        nonlocal noted
        rows, total = page_orders(db, open_only=open_only, account=account, symbol=symbol, session=session,
                                  venue=venue, limit=cut)
        complete = len(rows) >= total
        note = f"showing the newest {len(rows):,} of {total:,} orders; --all for every order (or --limit N)"
        if as_json:  # stdout stays one JSON array (one a line with --watch); the note goes to stderr, once
            if not complete and not noted:
                err.print(note, highlight=False)
                noted = True
            return rows, None
        when = f" at {datetime.now().strftime('%H:%M:%S')}" if watching else ""
        if complete:
            return rows, blotter_table(rows, f"{total:,} orders{when}")
        return rows, blotter_table(rows, f"{len(rows):,} of {total:,} orders{when}", caption=note)

    if watching:
        watch(console, frame, as_json, interval, count)
        return
    rows, shown = frame()
    if as_json:
        print_json(rows)
    else:
        console.print(shown)


@orders.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def orders_show(obj: Ctx, order_id: str, as_json: bool) -> None:
    """One order: its children and every journaled event."""
    from rich.table import Table

    from fixoms.blotter import show_order

    data = show_order(journal_db(obj), order_id)
    if data is None:
        raise click.ClickException(f"no order {order_id}")
    if as_json:
        print_json(data)
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


# --- sessions ----------------------------------------------------------------------------------------
@cli.group()
def sessions() -> None:
    """FIX sessions of the running engine: clients (we accept) and venues (we initiate)."""


@sessions.command("list")
@json_option
@click.option("--watch", is_flag=True, help="redraw every --interval seconds until Ctrl-C")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="seconds between redraws (--watch)")
@click.option("--count", type=click.IntRange(min=1), help="stop after this many redraws (--watch)")
@click.pass_obj
def sessions_list(obj: Ctx, as_json: bool, watch: bool, interval: float, count: int | None) -> None:
    """Every session: role, enabled, state, trading state (HALTED: held), next sequence numbers, remote
    address, heartbeat, when the last message came in and went out (UTC)."""
    from fixoms.cli_sessions import session_rows_table, watch_sessions

    if watch:
        watch_sessions(obj, as_json, interval, count)
        return
    rows = obj.call("sessions.list")
    if as_json:
        print_json(rows)
    else:
        console.print(session_rows_table(rows))


@sessions.command("show")
@click.argument("session_id")
@json_option
@click.pass_obj
def sessions_show(obj: Ctx, session_id: str, as_json: bool) -> None:
    """One session in detail: its settings and, for a client, its credential (never the password)."""
    data = obj.call("sessions.show", id=session_id)
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key in ("settings", "recent"):
            continue
        if key == "credential":
            value = ("none" if value is None else
                     f"username {value['username']}, addresses {','.join(value['allowed_addresses']) or 'any'}")
        console.print(f"{key:>20}: {cell(value)}", highlight=False)
    for key, value in sorted(data.get("settings", {}).items()):
        console.print(f"{key:>20}: {value}", highlight=False)
    from fixoms.cli_sessions import print_messages

    recent = data.get("recent", [])
    console.print(f"last {len(recent)} messages (since the engine started):" if recent
                  else "no messages since the engine started", highlight=False)
    print_messages(recent)


def _chosen_sessions(obj: Ctx, session_id: str | None, all_: bool, verb: str) -> tuple[list[str], str]:
    """The sessions an enable/disable acts on, and how to ask about them."""
    if all_ == bool(session_id):
        raise click.UsageError(f"{verb} needs a SESSION_ID or --all (not both)")
    if session_id:
        return [session_id], f"session {session_summary(obj, session_id)}"
    ids = [s["id"] for s in obj.call("sessions.list")]
    return ids, f"all {len(ids)} sessions ({', '.join(ids)})"


@sessions.command("enable")
@click.argument("session_id", required=False)
@click.option("--all", "all_", is_flag=True, help="every session (clients, drop copies and venues)")
@yes_option
@click.pass_obj
def sessions_enable(obj: Ctx, session_id: str | None, all_: bool, yes: bool) -> None:
    """Allow a session to log on again (a venue session reconnects)."""
    ids, what = _chosen_sessions(obj, session_id, all_, "enable")
    if not yes:
        confirm(yes, f"enable {what}?")
    for sid in ids:
        r = obj.call("sessions.enable", id=sid)
        console.print(describe_change(f"session {sid}", r["before"], r["after"], SESSION_CHANGE), highlight=False)


@sessions.command("disable")
@click.argument("session_id", required=False)
@click.option("--all", "all_", is_flag=True, help="every session (clients, drop copies and venues)")
@click.option("--reason", default="disabled by operator", show_default=True, help="Text(58) of the Logout")
@yes_option
@click.pass_obj
def sessions_disable(obj: Ctx, session_id: str | None, all_: bool, reason: str, yes: bool) -> None:
    """Log a session out with a reason; it stays down (logons refused) until `sessions enable`."""
    ids, what = _chosen_sessions(obj, session_id, all_, "disable")
    if not yes:
        confirm(yes, f"log out and disable {what}?")
    for sid in ids:
        r = obj.call("sessions.disable", id=sid, reason=reason)
        console.print(describe_change(f"session {sid}", r["before"], r["after"], SESSION_CHANGE), highlight=False)
    again = "--all" if all_ else ids[0]
    console.print(f"down until `fixoms sessions enable {again}` (or an engine restart)")


@sessions.command("reset")
@click.argument("session_id")
@yes_option
@click.pass_obj
def sessions_reset(obj: Ctx, session_id: str, yes: bool) -> None:
    """Reset a session's sequence numbers to 1/1 (logs it out; the counterparty must reset too)."""
    if not yes:
        confirm(yes, f"reset {session_summary(obj, session_id)} to sequence numbers 1/1? It is logged out "
                      f"and the counterparty must reset as well")
    r = obj.call("sessions.reset", id=session_id)
    console.print(describe_change(f"session {session_id}", r["before"], r["after"], SESSION_CHANGE), highlight=False)


@sessions.command("seqnum")
@click.argument("session_id")
@click.option("--sender", type=click.IntRange(min=1), help="next MsgSeqNum we send")
@click.option("--target", type=click.IntRange(min=1), help="next MsgSeqNum we expect")
@click.option("--force", is_flag=True, help="allow lowering the target and changing a logged-on session")
@click.option("--offline", is_flag=True, help="the engine is stopped: edit its FIX store (var_dir/store) directly")
@yes_option
@click.pass_obj
def sessions_seqnum(obj: Ctx, session_id: str, sender: int | None, target: int | None, force: bool,
                    offline: bool, yes: bool) -> None:
    """Set a session's next sender and/or target sequence number."""
    if sender is None and target is None:
        raise click.UsageError("give --sender N and/or --target N")
    if offline:
        _seqnum_offline(obj, session_id, sender, target, force, yes)
        return
    if not yes:
        want = ", ".join(f"{k} {v}" for k, v in (("sender", sender), ("target", target)) if v is not None)
        confirm(yes, f"set {session_summary(obj, session_id)} to {want}?")
    r = obj.call("sessions.seqnum", id=session_id, sender=sender, target=target, force=force)
    console.print(describe_change(f"session {session_id}", r["before"], r["after"], SESSION_CHANGE), highlight=False)


def _seqnum_offline(obj: Ctx, session_id: str, sender: int | None, target: int | None, force: bool,
                    yes: bool) -> None:
    """Edit QuickFIX's FileStore `.seqnums` file ("SSSS : TTTT", 20 digits each) of a stopped engine;
    audited in the journal directly, since there is no engine to do it."""
    import getpass
    import re

    from fixoms.admin import AdminClient, AdminError, EngineNotRunning
    from oms.queries import append_audit, make_engine

    try:
        AdminClient(obj.socket, timeout=5).call("ping")
    except EngineNotRunning:
        pass
    except AdminError as exc:
        raise click.ClickException(f"cannot tell whether the engine is stopped ({exc})") from None
    else:
        raise click.ClickException("the engine is running: use `sessions seqnum` without --offline")
    cfg = obj.config
    known = configured_sessions(cfg)
    info = known.get(session_id)
    if info is None:
        raise click.ClickException(f"no session {session_id!r} in {cfg.sessions_file} (known: {', '.join(sorted(known))})")
    from fix_engine.settings import session_file_prefix

    path = Path(cfg.var_dir) / "store" / f"{session_file_prefix(info.begin_string, info.sender, info.target)}.seqnums"
    if not path.exists():
        raise click.ClickException(f"no FIX store for {session_id} at {path}: the session never ran with this var_dir")
    found = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", path.read_text())
    if found is None:
        raise click.ClickException(f"{path}: not a QuickFIX sequence number file")
    before = {"next_sender_seq": int(found.group(1)), "next_target_seq": int(found.group(2))}
    after = {"next_sender_seq": sender or before["next_sender_seq"],
             "next_target_seq": target or before["next_target_seq"]}
    if after["next_target_seq"] < before["next_target_seq"] and not force:
        raise click.ClickException(f"lowering the target ({before['next_target_seq']} -> {after['next_target_seq']}) "
                                   "makes us take messages again: add --force if that is what you want")
    confirm(yes, f"set session {session_id} (engine stopped) to sender {after['next_sender_seq']}, "
                  f"target {after['next_target_seq']}?")
    path.write_text(f"{after['next_sender_seq']:020d} : {after['next_target_seq']:020d}")
    db = make_engine(cfg.database_url)
    try:
        append_audit(db, cfg.instance, getpass.getuser(), "admin",
                     {"action": "sessions.seqnum", "offline": True, "id": session_id, "before": before, "after": after})
    finally:
        db.dispose()
    console.print(describe_change(f"session {session_id} (offline)", before, after, ("next_sender_seq", "next_target_seq")),
                  highlight=False)


@sessions.command("password")
@click.argument("comp_id")
@click.option("--username", help="Username(553) the client sends (default: the CompID)")
@click.option("--address", "addresses", default="", help="allowed source addresses, comma-separated "
              "(required for FIX 4.2 sessions; empty: any address)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@yes_option
@click.pass_obj
def sessions_password(obj: Ctx, comp_id: str, username: str | None, addresses: str, password_stdin: bool,
                      yes: bool) -> None:
    """Set a client's logon credential (a salted scrypt hash in the journal, never the password).

    Works with or without a running engine; a running engine uses it after
    `fixoms sessions reload-credentials` (or a restart)."""
    from fixoms.admin import AdminClient, AdminError, EngineNotRunning, current_user
    from oms.queries import append_audit, create_schema, load_credentials, set_credential

    cfg = obj.config
    allowed = sorted({a.strip() for a in addresses.split(",") if a.strip()})
    try:
        known = configured_sessions(cfg)
    except Exception as exc:
        err.print(f"warning: cannot read {cfg.sessions_file} to check {comp_id}: {exc}", highlight=False)
        known = {}
    if known:
        info = known.get(comp_id)
        if info is None or info.connection_type != "acceptor":
            clients = ", ".join(sorted(k for k, s in known.items() if s.connection_type == "acceptor"))
            raise click.ClickException(f"{comp_id} is not a client session in {cfg.sessions_file} "
                                       f"(clients: {clients})")
        if info.begin_string == "FIX.4.2" and not allowed:
            err.print(f"warning: {comp_id} is a FIX 4.2 session: without --address it cannot log on "
                      f"(FIX 4.2 has no Username/Password)", highlight=False)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"password for {comp_id}", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password is empty")
    confirm(yes, f"set the credential of {comp_id} (username {username or comp_id}, addresses "
                  f"{','.join(allowed) or 'any'})?")
    user_name = username or comp_id
    try:
        AdminClient(obj.socket).call("credentials.set", comp_id=comp_id, username=user_name, password=password,
                                     addresses=allowed)
        running = True
    except EngineNotRunning:
        running = False
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    if not running:
        db = journal_db(obj)
        create_schema(db)
        replaced = comp_id in load_credentials(db)
        set_credential(db, comp_id, user_name, password, frozenset(allowed), current_user())
        append_audit(db, cfg.instance, current_user(), "admin",
                     {"action": "credentials.set", "via": "cli", "ok": True, "comp_id": comp_id,
                      "username": user_name, "allowed_addresses": allowed, "replaced": replaced})
    console.print(f"credential of {comp_id} set (username {user_name}, addresses "
                  f"{','.join(allowed) or 'any'})", highlight=False)
    if running:
        console.print("the running engine uses it only after `fixoms sessions reload-credentials` (or a restart)")
    else:
        console.print("the engine is not running: it reads the credential when it starts")


@sessions.command("reload-credentials")
@yes_option
@click.pass_obj
def sessions_reload_credentials(obj: Ctx, yes: bool) -> None:
    """Make the running engine use the credentials now in the journal (for the next logons)."""
    obj.call("ping")
    confirm(yes, "reload logon credentials from the journal?")
    r = obj.call("credentials.reload")
    console.print(f"credentials: {r['before']} -> {r['after']} (added {','.join(r['added']) or 'none'}; "
                  f"changed {','.join(r['changed']) or 'none'}; removed {','.join(r['removed']) or 'none'})",
                  highlight=False)


# --- orders: operator cancels ----------------------------------------------------------------------------
@orders.command("cancel")
@click.argument("order_id")
@click.option("--reason", default="canceled by operator", show_default=True)
@yes_option
@click.pass_obj
def orders_cancel(obj: Ctx, order_id: str, reason: str, yes: bool) -> None:
    """Cancel one order as if its client had asked (the client gets the cancel, with the reason)."""
    from fixoms.blotter import show_order

    if not yes:
        obj.call("ping")
        o = show_order(journal_db(obj), order_id)
        if o is None:
            raise click.ClickException(f"no order {order_id}")
        confirm(yes, f"cancel {order_id} ({o['session']} {o['account']} {o['side']} {o['order_qty']} {o['symbol']}"
                      f"{' @ ' + o['price'] if o['price'] else ''}, {o['status']}, filled {o['cum_qty']})?")
    r = obj.call("orders.cancel", order_id=order_id, reason=reason)
    console.print(f"order {order_id}: {r['before']} -> {r['after']} ({reason})", highlight=False)


@orders.command("cancel-all")
@click.option("--account")
@click.option("--symbol")
@click.option("--session")
@click.option("--venue", help="orders with a child working at this venue")
@click.option("--reason", default="canceled by operator", show_default=True)
@yes_option
@click.pass_obj
def orders_cancel_all(obj: Ctx, account: str | None, symbol: str | None, session: str | None, venue: str | None,
                      reason: str, yes: bool) -> None:
    """Cancel every open order in an explicit scope (--account, --symbol, --session and/or --venue; they
    combine)."""
    from oms.queries import count_orders

    if not (account or symbol or session or venue):
        raise click.UsageError("cancel-all needs an explicit scope: --account, --symbol, --session and/or --venue")
    scope = ", ".join(f"{k} {v}" for k, v in (("account", account), ("symbol", symbol), ("session", session),
                                                 ("venue", venue)) if v)
    if not yes:
        obj.call("ping")
        n = count_orders(journal_db(obj), open_only=True, account=account, symbol=symbol, session=session, venue=venue)
        confirm(yes, f"cancel the {n} open orders of {scope}?")
    r = obj.call("orders.cancel_all", account=account, symbol=symbol, session=session, venue=venue, reason=reason)
    if r["orders"]:
        console.print(table(f"{r['count']} orders of {scope}", ("order_id", "before", "after"), r["orders"]))
    console.print(f"{r['count']} open orders of {scope}: cancel requested ({reason})", highlight=False)


# --- risk ------------------------------------------------------------------------------------------------
@cli.group()
def risk() -> None:
    """Pre-trade risk of the running engine: limits, trading states (kill switch), exposure."""


@risk.command("show")
@json_option
@click.pass_obj
def risk_show(obj: Ctx, as_json: bool) -> None:
    """Trading states, limits and exposure per account."""
    snap = obj.call("risk.show")
    if as_json:
        print_json(snap)
        return
    firm = snap["firm"]
    console.print(f"firm: {firm['state']}; restricted {','.join(firm['restricted']) or 'none'}; submit rate "
                  f"{firm['session_submit_rate']}/s, modify rate {firm['session_modify_rate']}/s, duplicate "
                  f"window {firm['duplicate_window']}s", highlight=False)
    if snap["states"]:
        console.print(table("trading states (not ACTIVE)", ("scope", "state", "who", "reason"), snap["states"]))
    limit_cols = ("max_order_qty", "max_order_notional", "credit_limit", "max_position", "max_open_orders",
                  "price_collar")
    rows = [{"account": "(defaults)", "state": "", **snap["defaults"]}]
    for name, acct in snap["accounts"].items():
        rows.append({"account": name, "state": acct["state"], **acct["limits"], **acct["exposure"]})
    console.print(table("accounts", ("account", "state", *limit_cols, "open_notional", "filled_notional",
                                      "gross_position"), rows))


@risk.command("set")
@click.argument("account")
@click.argument("name")
@click.argument("value")
@yes_option
@click.pass_obj
def risk_set(obj: Ctx, account: str, name: str, value: str, yes: bool) -> None:
    """Change one limit of ACCOUNT ('*' for the firm / defaults), e.g. `risk set ACC-1 max_order_qty 5000`."""
    if not yes:
        obj.call("ping")
        confirm(yes, f"set {name} of {account} to {value}?")
    r = obj.call("risk.set", account=account, name=name, value=value)
    console.print(f"{account} {name}: {r['before']} -> {r['after']}", highlight=False)


def _trading_state(obj: Ctx, state: str, scope: str, reason: str, cancel_open: bool, yes: bool) -> None:
    if not yes:
        obj.call("ping")
        extra = " and cancel its open orders" if cancel_open else ""
        confirm(yes, f"set {scope} to {state}{extra} (reason: {reason})?")
    r = obj.call("risk.state", scope=scope, state=state, reason=reason, cancel_open=cancel_open)
    tail = f"; {r['canceled']} open orders canceled" if cancel_open else ""
    console.print(f"{r['scope']}: {r['before']} -> {r['after']} ({reason}){tail}", highlight=False)


_SCOPE_HELP = "firm, account:ACCOUNT or session:COMPID"


@risk.command("halt")
@click.option("--scope", required=True, help=_SCOPE_HELP)
@click.option("--reason", required=True)
@click.option("--cancel-open", is_flag=True, help="also cancel the scope's open orders")
@yes_option
@click.pass_obj
def risk_halt(obj: Ctx, scope: str, reason: str, cancel_open: bool, yes: bool) -> None:
    """Kill switch: refuse new orders and risk-adding replaces in the scope (cancels still pass)."""
    _trading_state(obj, "HALTED", scope, reason, cancel_open, yes)


@risk.command("reduce")
@click.option("--scope", required=True, help=_SCOPE_HELP)
@click.option("--reason", required=True)
@yes_option
@click.pass_obj
def risk_reduce(obj: Ctx, scope: str, reason: str, yes: bool) -> None:
    """Reduce-only: accept only orders that bring positions towards flat."""
    _trading_state(obj, "REDUCING", scope, reason, False, yes)


@risk.command("resume")
@click.option("--scope", required=True, help=_SCOPE_HELP)
@click.option("--reason", required=True)
@yes_option
@click.pass_obj
def risk_resume(obj: Ctx, scope: str, reason: str, yes: bool) -> None:
    """Back to ACTIVE."""
    _trading_state(obj, "ACTIVE", scope, reason, False, yes)


# --- positions -------------------------------------------------------------------------------------------
def _settlement(cfg: config_mod.Config) -> Any:
    import tomllib

    from oms.positions import SettlementCalendar

    section: dict[str, Any] = {}
    if cfg.source is not None and Path(cfg.source).exists():
        section = tomllib.loads(Path(cfg.source).read_text()).get("settlement", {})
    try:
        return SettlementCalendar.from_config(section)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _marks(values: tuple[str, ...]) -> dict[str, Any]:
    from decimal import Decimal, InvalidOperation

    out: dict[str, Decimal] = {}
    for v in values:
        symbol, _, px = v.partition("=")
        try:
            price = Decimal(px)
            if not symbol or not price.is_finite() or price <= 0:
                raise InvalidOperation
        except InvalidOperation:
            raise click.BadParameter(f"{v!r}: expected SYMBOL=PRICE, e.g. IBM=151.25", param_hint="--mark") from None
        out[symbol.strip()] = price
    return out


POSITION_COLUMNS = ("account", "symbol", "qty", "avg_cost", "mark", "realized", "unrealized", "total", "unsettled")


@cli.command()
@click.option("--account")
@click.option("--symbol")
@click.option("--mark", "mark_values", multiple=True, metavar="SYMBOL=PRICE",
              help="mark price (default: the symbol's last fill); repeatable")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="date for the unsettled quantity (default: today in [schedule] timezone)")
@click.option("--trades", "show_trades", is_flag=True, help="also list each trade with its settlement date")
@json_option
@click.pass_obj
def positions(obj: Ctx, account: str | None, symbol: str | None, mark_values: tuple[str, ...], as_of: Any,
              show_trades: bool, as_json: bool) -> None:
    """Positions and P&L per account and symbol, from the journal's executions (busts excluded)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from fixoms.blotter import positions_report, trade_dict
    from oms.positions import fmt_money

    cfg = obj.config
    tz = ZoneInfo(cfg.timezone)
    day = as_of.date() if as_of is not None else datetime.now(tz).date()
    book = positions_report(journal_db(obj), account=account, symbol=symbol, marks=_marks(mark_values),
                            calendar=_settlement(cfg), tz=tz, as_of=day)
    rows = [p.as_dict() for p in book.positions]
    totals = {k: fmt_money(v) for k, v in book.totals().items()}
    if as_json:
        data: dict[str, Any] = {"as_of": day.isoformat(), "positions": rows, "totals": totals}
        if show_trades:
            data["trades"] = [trade_dict(t) for t in book.trades]
        print_json(data)
        return
    console.print(table(f"positions as of {day.isoformat()}", POSITION_COLUMNS, rows))
    console.print(f"realized {totals['realized']}, unrealized {totals['unrealized']}", highlight=False)
    if show_trades:
        console.print(table("trades", ("exec_id", "account", "symbol", "side", "qty", "px", "trade_date",
                                        "settle_date", "status"), [trade_dict(t) for t in book.trades]))


# --- jobs ------------------------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Scheduled jobs of the running engine."""


@cli.group()
def venues() -> None:
    """Execution venues of the running engine."""


@venues.command("list")
@json_option
@click.pass_obj
def venues_list(obj: Ctx, as_json: bool) -> None:
    """Status (up, down, or suspect: logged on but not answering), measured ack time (median of the last
    100 children: routed -> the venue's New, ms), open and in-doubt children, fills today, fees and the
    configured latency per venue."""
    rows = obj.call("venues.list")
    if as_json:
        print_json(rows)
    else:
        console.print(table(f"{len(rows)} venues", ("venue", "status", "ack_ms", "open_children", "in_doubt",
                                                     "fills_today", "taker_fee", "maker_rebate", "latency_ms",
                                                     "symbols_quoted"), rows))


@jobs.command("list")
@json_option
@click.pass_obj
def jobs_list(obj: Ctx, as_json: bool) -> None:
    """Jobs with their next run time and trigger."""
    rows = obj.call("jobs.list")
    if as_json:
        print_json(rows)
    else:
        console.print(table(f"{len(rows)} jobs", ("id", "name", "next_run", "trigger"), rows))


@jobs.command("run")
@click.argument("name")
@yes_option
@click.pass_obj
def jobs_run(obj: Ctx, name: str, yes: bool) -> None:
    """Run a job now (expire_day expires every working DAY order)."""
    if not yes:
        obj.call("ping")
        confirm(yes, f"run job {name} now?")
    r = obj.call("jobs.run", name=name)
    console.print(f"job {name} ran: open orders {r['open_orders_before']} -> {r['open_orders_after']}",
                  highlight=False)
    if r.get("detail"):
        console.print(", ".join(f"{k} {v}" for k, v in r["detail"].items()), highlight=False)


# --- audit -----------------------------------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """The tamper-evident audit trail (hash chain) in the journal."""


@audit.command("verify")
@click.option("--instance", help="one engine instance (default: every instance in the journal)")
@json_option
@click.pass_obj
def audit_verify(obj: Ctx, instance: str | None, as_json: bool) -> None:
    """Recompute the hash chain; report the first broken link (exit 1) or that it is intact."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fixoms.blotter import verify_audit

    # Long chains take a while: a progress bar on the terminal (stderr, so --json output stays clean).
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        def progress(name: str, rows: int) -> Any:
            task = bar.add_task(f"verifying {name}", total=rows)
            return lambda: bar.advance(task)

        results = verify_audit(journal_db(obj), instance, progress)
    if as_json:
        print_json([{"instance": name, "rows": v.rows, "intact": v.intact, "last_seq": v.last_seq,
                      "last_hash": v.last_hash,
                      "broken": {"seq": v.broken.seq, "reason": v.broken.reason} if v.broken else None}
                     for name, v in results.items()])
    broken = [(name, v) for name, v in results.items() if not v.intact]
    if not as_json:
        for name, v in results.items():
            if v.intact:
                console.print(f"{name}: {v.rows} rows, chain intact (last hash {v.last_hash[:16]})", highlight=False)
        if not results:
            console.print("0 rows, chain intact (no audit rows yet)")
    if broken:
        name, v = broken[0]
        assert v.broken is not None
        raise click.ClickException(f"{name}: chain broken at row {v.broken.seq}: {v.broken.reason} "
                                   f"({v.rows} rows verified before it)")


@audit.command("list")
@click.option("--instance", help="engine instance (default: [engine] instance)")
@click.option("--kind", type=click.Choice(["inbound", "outbound", "admin"]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@click.pass_obj
def audit_list(obj: Ctx, instance: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """The last audit rows, oldest first."""
    from fixoms.blotter import audit_rows

    rows = audit_rows(journal_db(obj), instance or obj.config.instance, limit, kind)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["summary"] = json.dumps(r["summary"], separators=(",", ":"))
        r["hash"] = r["hash"][:12]
    console.print(table(f"last {len(rows)} audit rows", ("seq", "ts", "who", "kind", "summary", "hash"), rows))


# --- config ----------------------------------------------------------------------------------------------
@cli.group("config")
def config_group() -> None:
    """The configuration files."""


@config_group.command("check")
@click.option("--connect", is_flag=True, help="also connect to the database")
@json_option
@click.pass_obj
def config_check(obj: Ctx, connect: bool, as_json: bool) -> None:
    """Validate fixoms.toml and sessions.cfg without starting anything (exit 1 on an error)."""
    checks = _config_checks(obj, connect)
    if as_json:
        print_json(checks)
    else:
        console.print(table("config check", ("check", "result", "detail"), checks))
    failed = [c for c in checks if c["result"] == "FAIL"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(checks)} checks failed: "
                                   + "; ".join(f"{c['check']}: {c['detail']}" for c in failed))
    if not as_json:
        console.print(f"{len(checks)} checks passed" + (f" ({sum(c['result'] == 'WARN' for c in checks)} warnings)"
                                                         if any(c["result"] == "WARN" for c in checks) else ""))


def _config_checks(obj: Ctx, connect: bool) -> list[dict[str, str]]:
    from fixoms.admin import MAX_SOCKET_PATH

    out: list[dict[str, str]] = []

    def add(check: str, ok: bool | None, detail: str) -> None:
        out.append({"check": check, "result": "OK" if ok else ("WARN" if ok is None else "FAIL"), "detail": detail})

    try:
        cfg = config_mod.load(obj.config_path)
    except config_mod.ConfigError as exc:
        add("fixoms.toml", False, str(exc))
        return out
    add("fixoms.toml", True, str(cfg.source or "built-in defaults (no fixoms.toml)"))
    try:
        calendar = _settlement(cfg)
        add("settlement", True, f"T+{calendar.cycle_days}, {len(calendar.holidays)} holidays")
    except click.ClickException as exc:
        add("settlement", False, exc.message)
    try:
        from oms.queries import make_engine

        db = make_engine(cfg.database_url)
        if connect:
            with db.connect():
                pass
        add("database", True, cfg.database_url + (" (connected)" if connect else ""))
    except Exception as exc:
        add("database", False, f"{cfg.database_url}: {exc.__class__.__name__}: {exc}")
    from fix_engine.settings import quickfix_guarded, quickfix_version

    add("quickfix", quickfix_guarded() or None, quickfix_version() + (
        "" if quickfix_guarded() else ": not the guarded build (native/quickfix/build.sh); `make install` builds it"))
    sock = obj.socket
    add("admin socket", len(os.fsencode(sock)) <= MAX_SOCKET_PATH,
        f"{sock}" if len(os.fsencode(sock)) <= MAX_SOCKET_PATH else f"{sock} is longer than {MAX_SOCKET_PATH} bytes")
    try:
        known = configured_sessions(cfg)
    except Exception as exc:
        add("sessions.cfg", False, f"{cfg.sessions_file}: {exc}")
        return out
    clients = {k for k, s in known.items() if s.connection_type == "acceptor"}
    venues = {k for k, s in known.items() if s.connection_type == "initiator"}
    add("sessions.cfg", True, f"{cfg.sessions_file}: {len(clients)} client and {len(venues)} venue sessions")
    for key, s in sorted(known.items()):
        if s.connection_type == "acceptor" and "SocketAcceptPort" not in s.settings:
            add(f"session {key}", False, "acceptor session without SocketAcceptPort")
        if s.connection_type == "initiator" and not {"SocketConnectHost", "SocketConnectPort"} <= set(s.settings):
            add(f"session {key}", False, "initiator session without SocketConnectHost/SocketConnectPort")
    missing = sorted({v for v in cfg.symbols.values() if v not in venues})
    add("symbols", not missing, f"{len(cfg.symbols)} symbols" if not missing else
        f"routed to venues with no initiator session: {', '.join(missing)}")
    for what, names in (("accounts", set(cfg.accounts)), ("cancel_on_disconnect", cfg.cancel_on_disconnect)):
        unknown = sorted(names - clients)
        add(what, None if unknown else True,
            f"not client sessions in sessions.cfg: {', '.join(unknown)}" if unknown else f"{len(names)} sessions")
    if not cfg.require_auth:
        add("access", None, "require_auth = false: clients without a credential may log on")
    return out


@cli.group()
def report() -> None:
    """Reports from the journal."""


@report.command("eod")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="trading day (default: today)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="folder for the CSVs (default: <var>/reports)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def report_eod(obj: Ctx, day: Any, out_dir: str | None, as_json: bool) -> None:
    """End-of-day report: orders, fills, positions and P&L per account (CSV files and a summary)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from fixoms.eod import write_eod

    cfg = obj.config
    tz = ZoneInfo(cfg.timezone)
    when = day.date() if day is not None else datetime.now(tz).date()
    summary = write_eod(journal_db(obj), when, Path(out_dir) if out_dir else cfg.var_dir / "reports", tz, _settlement(cfg))
    if as_json:
        print_json(summary)
        return
    rows = [{"account": k, **v} for k, v in summary["accounts"].items()]
    console.print(table(f"end of day {summary['date']}", ("account", "orders", "fills", "filled_qty", "realized",
                                                           "unrealized"), rows))
    for name, path in summary["files"].items():
        console.print(f"{name}: {path}", highlight=False)


@report.command("tca")
@click.option("--symbol")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1), help="orders listed")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def report_tca(obj: Ctx, symbol: str | None, limit: int, as_json: bool) -> None:
    """Transaction cost analysis: per finished order and aggregated (shortfall vs arrival mid in bps,
    fill rate, fees and rebates, venues, time to fill)."""
    from rich.table import Table

    from oms.queries import tca_figures
    from sor.tca import ParentTCA, aggregate

    tcas = [ParentTCA.from_dict(figures) for figures in tca_figures(journal_db(obj))]
    if symbol:
        tcas = [t for t in tcas if t.symbol == symbol]
    summary = aggregate(tcas)
    if as_json:
        print_json({"orders": [t.as_dict() for t in tcas], "summary": {
            k: (str(v) if v is not None and not isinstance(v, int | dict) else v)
            for k, v in vars_of(summary).items()}})
        return
    t = Table(title=f"TCA, last {min(limit, len(tcas))} of {len(tcas)} finished orders", title_justify="left")
    for col in ("order", "symbol", "side", "qty", "filled", "arrival mid", "avg px", "shortfall bps", "fees",
                "rebates", "venues", "time to fill s"):
        t.add_column(col)
    for x in tcas[-limit:]:
        t.add_row(x.order_id, x.symbol, x.side.name, str(x.order_qty), str(x.filled_qty), str(x.arrival_mid or ""),
                  str(x.avg_price or ""), str(x.shortfall_bps if x.shortfall_bps is not None else ""),
                  str(x.fees), str(x.rebates), ",".join(x.venues),
                  "" if x.time_to_fill is None else f"{x.time_to_fill.total_seconds():.3f}")
    console.print(t)
    console.print(f"{summary.parents} orders, fill rate {summary.fill_rate}, shortfall "
                  f"{summary.shortfall_bps if summary.shortfall_bps is not None else 'n/a'} bps, fees "
                  f"{summary.fees}, rebates {summary.rebates}, net {summary.net_fees}")


def vars_of(obj: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# The newer session commands live in their own module; importing it attaches them to `sessions`.
# Run as `python -m fixoms.cli` this file is __main__, not fixoms.cli: the block at the end hands over
# to the importable module, which is the one cli_sessions attaches to.
if __name__ != "__main__":
    from fixoms import cli_ha, cli_sessions

    cli_sessions.register(sessions)
    cli_ha.register(cli)


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
    from fixoms.cli import main as _main

    _main()
