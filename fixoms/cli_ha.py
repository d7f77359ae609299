"""`fixoms run` in HA mode, and `fixoms ha status|step-down` (fixoms.ha, docs/operations.md Failover).
Attached to the CLI by fixoms.cli (`register`)."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from typing import Any

import click

from fixoms.cli_common import (
    Ctx,
    confirm,
    console,
    json_option,
    print_json,
    table,
    yes_option,
)
from fixoms.config import Config, ConfigError


def run_ha(cfg: Config) -> None:
    """A candidate: stands by until it holds the lease, then runs as the primary until SIGINT/SIGTERM."""
    from fixoms import ha

    try:
        ha.check_supported(cfg)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def started(app: Any) -> None:
        from fixoms import collector

        collector.enable()
        console.print(f"fixoms {cfg.instance} running as the HA primary (journal {cfg.database_url}); Ctrl-C to stop")
        if app.admin is not None:
            console.print(f"admin socket {app.admin.path}")

    console.print(f"fixoms {cfg.instance} HA candidate: primary if the lease is free, else standing by")
    sys.stdout.flush()
    code = ha.run_node(cfg, on_started=started, stop_event=stop)
    console.print("stopped")
    if code:
        sys.exit(code)


def _status(obj: Ctx) -> dict[str, Any]:
    from sqlalchemy.exc import SQLAlchemyError

    from oms.journal import Journal
    from oms.lease import log_head, members, read_lease
    from oms.queries import make_engine

    cfg = obj.config
    if not cfg.database_url.startswith("postgresql"):
        raise click.ClickException("high availability needs the journal on PostgreSQL: "
                                   f"{cfg.database_url.split(':', 1)[0]} has no lease to show")
    db = make_engine(cfg.database_url)
    try:
        with db.connect() as conn:
            lease = read_lease(conn, cfg.instance)
            head = log_head(conn, cfg.instance)
            reports = members(conn, cfg.instance)
        Journal(db, cfg.instance, projector="off").append_audit(_who(), "admin", {"action": "ha.status", "ok": True})
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot read the HA state at {cfg.database_url}: "
                                   f"{str(exc).splitlines()[0]}") from None
    finally:
        db.dispose()
    out: dict[str, Any] = {"instance": cfg.instance, "log_head": head, "holder": None, "epoch": 0,
                           "expires": None, "remaining_s": None, "live": False, "members": []}
    if lease is not None:
        out |= {"holder": lease.holder or None, "epoch": lease.epoch, "expires": lease.expires.isoformat(),
                "remaining_s": round(lease.remaining_s, 3), "live": lease.live,
                "renewed": lease.renewed.isoformat() if lease.renewed else None,
                "acquired": lease.acquired.isoformat() if lease.acquired else None}
    now = datetime.now().astimezone()
    for m in reports:
        out["members"].append({"holder": m.holder, "role": m.role, "seen_batch": m.seen_batch,
                               "lag_batches": m.lag_batches, "lag_events": m.lag_events, "lag_s": round(m.lag_s, 3),
                               "reported_s_ago": round(m.reported_age_s if m.reported_age_s is not None
                                                       else (now - m.reported).total_seconds(), 3)})
    return out


def _who() -> str:
    from fixoms.admin import current_user

    return current_user()


@click.group("ha")
def ha_group() -> None:
    """High availability: the primary's lease and its standbys (PostgreSQL journal)."""


@ha_group.command("status")
@json_option
@click.pass_obj
def ha_status(obj: Ctx, as_json: bool) -> None:
    """Who holds the lease (holder, epoch, expiry) and each member's last report (standby lag)."""
    data = _status(obj)
    if as_json:
        print_json(data)
        return
    if data["holder"]:
        state = "live" if data["live"] else "EXPIRED"
        console.print(f"{data['instance']}: primary {data['holder']}, epoch {data['epoch']}, lease {state} "
                      f"({data['remaining_s']:+.3f}s), log head {data['log_head']}", highlight=False)
    else:
        console.print(f"{data['instance']}: no primary (lease {'released' if data['epoch'] else 'never taken'}, "
                      f"epoch {data['epoch']}), log head {data['log_head']}", highlight=False)
    console.print(table("members", ("holder", "role", "seen_batch", "lag_batches", "lag_events", "lag_s",
                                     "reported_s_ago"), data["members"]))


@ha_group.command("step-down")
@click.option("--force", is_flag=True, help="even if no standby is following (this engine then takes the lease back)")
@yes_option
@click.pass_obj
def ha_step_down(obj: Ctx, force: bool, yes: bool) -> None:
    """Planned switch-over: the primary stops its sessions, finishes its queue, releases the lease (a standby
    takes over at its next look) and becomes a standby."""
    confirm(yes, f"step the primary of {obj.config.instance} down?")
    result = obj.call("ha.step_down", force=force)
    console.print(f"{result['holder']} (epoch {result['epoch']}) is stepping down: a standby takes over", highlight=False)


def register(group: click.Group) -> None:
    group.add_command(ha_group)
