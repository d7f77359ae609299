"""What the CLI's command modules share (fixoms.cli, fixoms.cli_sessions, fixoms.cli_ha): the consoles, the
click context object, the common options, tables, JSON output and the journal's database for reads. The
command modules import this one and never each other, so none reaches into another's private names."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from fixoms import config as config_mod

# soft_wrap: a line is never broken to fit the terminal (errors stay one line; paths stay greppable).
# Not a terminal (CI logs, pipes): wide enough that tables keep whole columns instead of ellipses.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


class Ctx:
    def __init__(self, config_path: str | None, admin_socket: str | None = None, log_level: str = "WARNING") -> None:
        self.config_path = config_path
        self.admin_socket = admin_socket
        self.log_level = log_level
        self._config: config_mod.Config | None = None

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            try:
                self._config = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config

    @property
    def socket(self) -> Path:
        from fixoms.admin import socket_path

        return Path(self.admin_socket) if self.admin_socket else socket_path(self.config)

    def call(self, action: str, **args: Any) -> Any:
        """One admin request to the running engine; its refusal becomes a one-line error."""
        from fixoms.admin import AdminClient, AdminError

        try:
            return AdminClient(self.socket).call(action, **args)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None



def journal_db(obj: Ctx) -> Any:
    """The journal's database for a read command. If an engine runs, it first projects what it has
    appended (its tables trail its log by a pass), so a read shows what was just done."""
    from fixoms.admin import AdminClient, AdminError
    from oms.queries import make_engine

    if obj.socket.exists():
        with contextlib.suppress(AdminError, OSError):
            AdminClient(obj.socket, timeout=10).call("journal.sync")
    return make_engine(obj.config.database_url)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))



# --- shared options and helpers -----------------------------------------------------------------------
def yes_option(f: Any) -> Any:
    return click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")(f)


def confirm(yes: bool, question: str) -> None:
    if not yes:
        click.confirm(question, abort=True)


def table(title: str, columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for r in rows:
        t.add_row(*(cell(r.get(col)) for col in columns))
    return t


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def describe_change(label: str, before: dict[str, Any], after: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = [f"{k} {cell(before.get(k))} -> {cell(after.get(k))}" for k in keys]
    return f"{label}: " + "; ".join(parts)


SESSION_COLUMNS = ("id", "role", "enabled", "state", "trading", "next_sender_seq", "next_target_seq", "remote",
                   "heartbeat", "last_in", "last_out")
SESSION_CHANGE = ("enabled", "state", "next_sender_seq", "next_target_seq")



def session_summary(obj: Ctx, session_id: str) -> str:
    s = obj.call("sessions.show", id=session_id)
    return (f"{s['id']} ({s['role']}, {'enabled' if s['enabled'] else 'disabled'}, {s['state']}, "
            f"next seq {s['next_sender_seq']}/{s['next_target_seq']})")



def configured_sessions(cfg: config_mod.Config) -> dict[str, Any]:
    """sessions.cfg's sessions by CompID, read without touching the configured var folder."""
    import tempfile

    from fix_engine import settings as fix_settings

    with tempfile.TemporaryDirectory() as tmp:
        loaded = fix_settings.load(cfg.sessions_file, fix_settings.SessionOverrides(var_dir=Path(tmp)))
        return {s.key: s for s in fix_settings.sessions(loaded)}
