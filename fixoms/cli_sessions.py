"""`fixoms sessions ...` commands beyond list/show/enable/disable/reset/seqnum/password: watch, disconnect,
sequence-reset, resend, test-request, hold/release, messages. Attached to the `sessions` group by
fixoms.cli (`register`); the engine side is fixoms.admin_sessions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from fixoms.cli_common import (
    SESSION_CHANGE,
    SESSION_COLUMNS,
    Ctx,
    configured_sessions,
    confirm,
    console,
    describe_change,
    json_option,
    print_json,
    session_summary,
    table,
    yes_option,
)


# --- list --watch ------------------------------------------------------------------------------------
def _clock(ts: str | None) -> str:
    """`2025-01-02T14:03:07.123+00:00` -> `14:03:07.123` (the table is about now; JSON keeps the date)."""
    return ts[11:23] if ts else ""


def session_rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Any:
    shown = [{**r, "last_in": _clock(r.get("last_in")), "last_out": _clock(r.get("last_out"))} for r in rows]
    return table(title or f"{len(rows)} sessions", SESSION_COLUMNS, shown)


def watch_sessions(obj: Ctx, as_json: bool, interval: float, count: int | None) -> None:
    from datetime import datetime

    from fixoms.watch import watch

    def frame() -> tuple[list[dict[str, Any]], Any]:
        rows = obj.call("sessions.list")
        title = f"{len(rows)} sessions at {datetime.now().strftime('%H:%M:%S')} (every {interval:g}s)"
        return rows, session_rows_table(rows, title)

    watch(console, frame, as_json, interval, count)


# --- connection and sequence numbers -----------------------------------------------------------------
@click.command("disconnect")
@click.argument("session_id")
@yes_option
@click.pass_obj
def disconnect(obj: Ctx, session_id: str, yes: bool) -> None:
    """Drop the TCP connection (no Logout) without disabling: a venue session reconnects by itself, a client
    may log on again. Cancel-on-disconnect applies to a client's working orders."""
    if not yes:
        s = obj.call("sessions.show", id=session_id)
        cod = " Its working orders are canceled (cancel-on-disconnect)." if s.get("cancel_on_disconnect") else ""
        confirm(yes, f"drop the connection of {session_summary(obj, session_id)}?{cod}")
    r = obj.call("sessions.disconnect", id=session_id)
    console.print(describe_change(f"session {session_id}", r["before"], r["after"], SESSION_CHANGE), highlight=False)
    console.print("still enabled: " + ("we reconnect by ourselves" if r["after"]["role"] == "venue"
                                       else "the client may log on again"), highlight=False)


@click.command("sequence-reset")
@click.argument("session_id")
@click.option("--new-seqno", required=True, type=click.IntRange(min=1),
              help="NewSeqNo(36): the next MsgSeqNum we send (never below the current one)")
@yes_option
@click.pass_obj
def sequence_reset(obj: Ctx, session_id: str, new_seqno: int, yes: bool) -> None:
    """Send a SequenceReset (35=4, Reset mode, GapFillFlag=N) to a logged-on session: the counterparty
    expects NewSeqNo next, and so do we."""
    if not yes:
        confirm(yes, f"send SequenceReset NewSeqNo={new_seqno} on {session_summary(obj, session_id)}?")
    r = obj.call("sessions.sequence_reset", id=session_id, new_seqno=new_seqno)
    console.print(describe_change(f"session {session_id}", r["before"], r["after"], ("next_sender_seq",))
                  + f" (SequenceReset sent as MsgSeqNum {r['sent_with_seqno']})", highlight=False)


@click.command("resend")
@click.argument("session_id")
@click.option("--from", "begin", required=True, type=click.IntRange(min=1), help="BeginSeqNo(7)")
@click.option("--to", "end", default=0, show_default=True, type=click.IntRange(min=0),
              help="EndSeqNo(16); 0: through the last message")
@yes_option
@click.pass_obj
def resend(obj: Ctx, session_id: str, begin: int, end: int, yes: bool) -> None:
    """Ask the counterparty to resend messages (ResendRequest, 35=2). Messages we already processed come
    back as PossDup and are not processed again."""
    if end and end < begin:
        raise click.BadParameter(f"--to {end} is before --from {begin}", param_hint="--to")
    span = f"{begin}..{end or 'last'}"
    if not yes:
        confirm(yes, f"ask {session_summary(obj, session_id)} to resend {span}?")
    r = obj.call("sessions.resend", id=session_id, begin=begin, end=end)
    console.print(f"session {session_id}: ResendRequest {span} sent (BeginSeqNo {r['begin']}, EndSeqNo {r['end']}); "
                  f"next expected from it {r['next_target_seq']}", highlight=False)


@click.command("test-request")
@click.argument("session_id")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0, 60, min_open=True),
              help="seconds to wait for the Heartbeat")
@json_option
@click.pass_obj
def test_request(obj: Ctx, session_id: str, timeout: float, as_json: bool) -> None:
    """Send a TestRequest (35=1) and time the Heartbeat that answers it (round trip in ms)."""
    r = obj.call("sessions.test_request", id=session_id, timeout=timeout)
    if as_json:
        print_json(r)
        return
    console.print(f"session {session_id}: Heartbeat for TestRequest {r['test_req_id']} in "
                  f"{r['round_trip_ms']:.3f} ms", highlight=False)


# --- hold / release ----------------------------------------------------------------------------------
def _trading(obj: Ctx, action: str, session_id: str, reason: str | None, yes: bool, question: str) -> None:
    if not yes:
        obj.call("sessions.show", id=session_id)  # unknown session: say so before asking
        confirm(yes, question)
    r = obj.call(action, id=session_id, reason=reason)
    console.print(f"session {session_id}: trading {r['before']} -> {r['after']} ({r['reason']})", highlight=False)


@click.command("hold")
@click.argument("session_id")
@click.option("--reason", help="why (journaled; default: held by USER)")
@yes_option
@click.pass_obj
def hold(obj: Ctx, session_id: str, reason: str | None, yes: bool) -> None:
    """Keep a client session logged on but refuse its new orders and risk-adding replaces (ExecutionReport
    Rejected, OrdRejReason 99, "held by an operator"); cancels pass. Its trading state becomes HALTED."""
    _trading(obj, "sessions.hold", session_id, reason, yes,
             f"hold session {session_id}: refuse its new orders (cancels still pass)?")


@click.command("release")
@click.argument("session_id")
@click.option("--reason", help="why (journaled; default: released by USER)")
@yes_option
@click.pass_obj
def release(obj: Ctx, session_id: str, reason: str | None, yes: bool) -> None:
    """Undo `sessions hold`: the session's trading state back to ACTIVE."""
    _trading(obj, "sessions.release", session_id, reason, yes, f"release session {session_id}: accept its orders?")


# --- messages ----------------------------------------------------------------------------------------
def print_messages(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        name = m["msg_type_name"] or m["msg_type"]
        console.print(f"{m['ts']} {m['direction']:<3} {m['seq']:>6} {name:<26} {m['message']}", highlight=False,
                      markup=False)


def _message_log(obj: Ctx, session_id: str) -> tuple[Path, str]:
    """The session's FileLog message file and our CompID on it: from the running engine, else from the
    config (`[engine] var_dir`/log, as `fixoms run` sets FileLogPath)."""
    from fix_engine.logs import message_file
    from fixoms.admin import AdminClient, AdminError, EngineNotRunning

    try:
        data = AdminClient(obj.socket).call("sessions.show", id=session_id)
        return Path(data["message_log"]), data["sender"]
    except EngineNotRunning:
        pass
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    cfg = obj.config
    try:
        known = configured_sessions(cfg)
    except Exception as exc:
        raise click.ClickException(f"cannot read {cfg.sessions_file}: {exc}") from None
    info = known.get(session_id)
    if info is None:
        raise click.ClickException(f"no session {session_id!r} (sessions: {', '.join(sorted(known))})")
    return message_file(cfg.var_dir / "log", info.begin_string, info.sender, info.target), info.sender


@click.command("messages")
@click.argument("session_id")
@click.option("--type", "types", default="", help="only these MsgTypes, comma-separated (e.g. D,8)")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="the last N messages")
@click.option("--follow", "-f", is_flag=True, help="then print new messages as they come, until Ctrl-C")
@click.option("--count", type=click.IntRange(min=1), help="--follow: stop after N new messages")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), help="--follow: stop after S seconds")
@json_option
@click.pass_obj
def messages(obj: Ctx, session_id: str, types: str, limit: int, follow: bool, count: int | None,
             timeout: float | None, as_json: bool) -> None:
    """A session's FIX messages as QuickFIX logged them (its FileLog message file), one a line:
    time (UTC), in/out, MsgSeqNum, MsgType, then the message as tag=value|... Works with the engine
    stopped too (the file is read from `[engine] var_dir`/log)."""
    from fix_engine.logs import follow as follow_file
    from fix_engine.logs import tail

    if (count or timeout) and not follow:
        raise click.UsageError("--count and --timeout go with --follow")
    wanted = frozenset(t.strip() for t in types.split(",") if t.strip())
    path, ours = _message_log(obj, session_id)
    if not path.exists():
        raise click.ClickException(f"no message log for {session_id} at {path}")
    last, offset = tail(path, ours, wanted, limit)
    if as_json and not follow:
        print_json([m.as_dict() for m in last])
        return
    emit = (lambda m: click.echo(json.dumps(m))) if as_json else (lambda m: print_messages([m]))
    for m in last:
        emit(m.as_dict())
    if not follow:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    try:
        for batch in follow_file(path, ours, offset, wanted):
            for m in batch:
                emit(m.as_dict())
                seen += 1
                if count is not None and seen >= count:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                if count is not None:
                    raise click.ClickException(f"stopped after {timeout:g}s: {seen} of {count} new messages")
                return
    except KeyboardInterrupt:
        return


def register(group: click.Group) -> None:
    for command in (disconnect, sequence_reset, resend, test_request, hold, release, messages):
        group.add_command(command)
