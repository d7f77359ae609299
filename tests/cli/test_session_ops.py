"""The session operations of the CLI against a real running engine (venue simulators, the engine with its
admin socket, a real FIX client on loopback): watch, last messages, disconnect, sequence-reset, resend,
test-request, hold/release, messages, log rotation, JSON logs.

This module has its own stack: disconnects and sequence resets must not disturb test_cli's sessions.
"""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fix_engine import codec
from fix_engine.client import FixClient, Msg
from fix_engine.quickfix_import import fix
from fixoms.cli import cli
from fixoms.logrotate import rotate_logs
from tests.cli.test_cli import (
    CLI_ENV,
    as_json,
    cli_command,
    fixoms,
    module_stack,
    ok,
    rest,
    run_fixoms,
    sessions_on_free_ports,
    start_run,
    wait_until,
    write_config,
)
from tests.conftest import Stack

NEW, CANCELED, REJECTED = "0", "4", "8"


@pytest.fixture(scope="module")
def ostack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory.mktemp("ops"))


@pytest.fixture(scope="module")
def cfg(ostack: Stack) -> Path:
    return write_config(ostack.tmp, ostack.db_url, ostack.tmp / "admin.sock")


@pytest.fixture(scope="module")
def client(ostack: Stack) -> FixClient:
    return ostack.client()


def session(cfg: Path, key: str) -> dict:
    return next(s for s in as_json(fixoms(cfg, "sessions", "list", "--json")) if s["id"] == key)


def admin_message(client: FixClient, msg_type: str, timeout: float = 10.0) -> Msg:
    """The next session-level message of that type the client received (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = client.app.admin.get(timeout=max(0.01, deadline - time.monotonic()))
        if msg.get(codec.MSG_TYPE) == msg_type:
            return msg


def drain_admin(client: FixClient) -> None:
    while not client.app.admin.empty():
        client.app.admin.get_nowait()


_QTY = iter(range(100, 10_000))


def still_trading(client: FixClient, account: str) -> None:
    """Sequence numbers agree on both sides: an order is acknowledged and canceled. (A new quantity each
    time: the same order twice within a second is refused as a duplicate.)"""
    cl, _ = rest(client, account, next(_QTY), "140.00")
    x = client.cancel(cl, "IBM", "1", 100)
    client.wait_report(x, status=CANCELED)


# --- list / show ------------------------------------------------------------------------------------
def test_list_shows_trading_state_and_last_message_times(cfg: Path, client: FixClient) -> None:
    rows = {r["id"]: r for r in as_json(fixoms(cfg, "sessions", "list", "--json"))}
    c1 = rows["CLIENT1"]
    assert c1["trading"] == "ACTIVE" and c1["last_in"] and c1["last_out"]  # its Logon, our Logon
    assert c1["last_in"].endswith("+00:00")
    assert rows["CLIENT2"]["last_in"] is None and rows["VENUE-A"]["trading"] == ""
    table = ok(fixoms(cfg, "sessions", "list"))
    header = next(ln for ln in table.splitlines() if "next_sender_seq" in ln)
    assert "trading" in header and "last_in" in header and "last_out" in header
    line = next(ln for ln in table.splitlines() if "CLIENT1" in ln)
    assert "ACTIVE" in line and c1["last_in"][11:19] in line


def test_list_watch_redraws_count_times(cfg: Path) -> None:
    out = ok(fixoms(cfg, "sessions", "list", "--watch", "--interval", "0.1", "--count", "3"))
    assert out.count("5 sessions at ") == 3 and out.count("CLIENT1") == 3
    lines = ok(fixoms(cfg, "sessions", "list", "--watch", "--json", "--interval", "0.1", "--count", "2")).splitlines()
    assert len(lines) == 2
    assert all({r["id"] for r in json.loads(ln)} >= {"CLIENT1", "VENUE-A"} for ln in lines)
    res = fixoms(cfg, "sessions", "list", "--watch", "--interval", "0")
    assert res.exit_code == 2 and "--interval" in res.output


def test_show_lists_the_last_messages(cfg: Path, client: FixClient) -> None:
    cl, _ = rest(client, "ACC-SHOW", 100, "141.00")
    data = as_json(fixoms(cfg, "sessions", "show", "CLIENT1", "--json"))
    recent = data["recent"]
    assert 0 < len(recent) <= 10
    mine = [m for m in recent if f"|11={cl}|" in m["message"]]
    assert {(m["direction"], m["msg_type"]) for m in mine} == {("in", "D"), ("out", "8")}
    assert all(m["message"].startswith("8=FIX.4.4|") for m in recent)
    assert data["message_log"].endswith("FIX.4.4-FIXOMS-CLIENT1.messages.current.log")
    text = ok(fixoms(cfg, "sessions", "show", "CLIENT1"))
    assert f"last {len(recent)} messages" in text
    assert any("NewOrderSingle" in ln and f"11={cl}" in ln for ln in text.splitlines())
    x = client.cancel(cl, "IBM", "1", 100)
    client.wait_report(x, status=CANCELED)


# --- test-request ------------------------------------------------------------------------------------
def test_test_request_reports_the_round_trip(cfg: Path, client: FixClient) -> None:
    for key in ("CLIENT1", "VENUE-A"):
        r = as_json(fixoms(cfg, "sessions", "test-request", key, "--json"))
        assert r["id"] == key and r["test_req_id"].startswith("OPS-") and r["round_trip_ms"] > 0
    out = ok(fixoms(cfg, "sessions", "test-request", "CLIENT1"))
    assert out.startswith("session CLIENT1: Heartbeat for TestRequest OPS-") and out.rstrip().endswith(" ms")
    asked = admin_message(client, codec.TEST_REQUEST)
    assert asked[codec.TEST_REQ_ID].startswith("OPS-")
    res = fixoms(cfg, "sessions", "test-request", "CLIENT2")
    assert res.exit_code == 1 and "session CLIENT2 is not logged on" in res.stderr
    res = fixoms(cfg, "sessions", "test-request", "CLIENT1", "--timeout", "0")
    assert res.exit_code == 2


# --- sequence-reset / resend -------------------------------------------------------------------------
def test_sequence_reset_moves_both_sides_and_refuses_lowering(cfg: Path, client: FixClient) -> None:
    drain_admin(client)
    before = session(cfg, "CLIENT1")["next_sender_seq"]
    new = before + 50
    out = ok(fixoms(cfg, "sessions", "sequence-reset", "CLIENT1", "--new-seqno", str(new), "--yes"))
    assert out.startswith(f"session CLIENT1: next_sender_seq {before} -> {new} (SequenceReset sent as MsgSeqNum")
    reset = admin_message(client, codec.SEQUENCE_RESET)
    assert (reset[codec.NEW_SEQ_NO], reset[codec.GAP_FILL_FLAG]) == (str(new), "N")
    assert fix.Session.lookupSession(client.sid).getExpectedTargetNum() == new
    assert session(cfg, "CLIENT1")["next_sender_seq"] == new
    still_trading(client, "ACC-SEQ")
    res = fixoms(cfg, "sessions", "sequence-reset", "CLIENT1", "--new-seqno", "1", "--yes")
    assert res.exit_code == 1 and "below the next sequence number" in res.stderr
    res = fixoms(cfg, "sessions", "sequence-reset", "CLIENT1", "--new-seqno", "0", "--yes")
    assert res.exit_code == 2 and "--new-seqno" in res.output
    res = fixoms(cfg, "sessions", "sequence-reset", "CLIENT2", "--new-seqno", "500", "--yes")
    assert res.exit_code == 1 and "session CLIENT2 is not logged on" in res.stderr
    res = fixoms(cfg, "sessions", "sequence-reset", "CLIENT1", "--new-seqno", str(new + 5), input="n\n")
    assert res.exit_code == 1 and "Aborted" in res.output
    assert session(cfg, "CLIENT1")["next_sender_seq"] >= new


def test_resend_request_reaches_the_counterparty(cfg: Path, client: FixClient) -> None:
    drain_admin(client)
    still_trading(client, "ACC-RS1")
    expected = session(cfg, "CLIENT1")["next_target_seq"]
    out = ok(fixoms(cfg, "sessions", "resend", "CLIENT1", "--from", "2", "--yes"))
    assert out.strip() == (f"session CLIENT1: ResendRequest 2..last sent (BeginSeqNo 2, EndSeqNo 0); next expected "
                           f"from it {expected}")
    asked = admin_message(client, codec.RESEND_REQUEST)
    assert (asked[codec.BEGIN_SEQ_NO], asked[codec.END_SEQ_NO]) == ("2", "0")
    ok(fixoms(cfg, "sessions", "resend", "CLIENT1", "--from", "2", "--to", "3", "--yes"))
    asked = admin_message(client, codec.RESEND_REQUEST)
    assert (asked[codec.BEGIN_SEQ_NO], asked[codec.END_SEQ_NO]) == ("2", "3")
    # The client resent what it had (PossDup): nothing was processed twice, the session goes on.
    still_trading(client, "ACC-RS1")
    assert session(cfg, "CLIENT1")["state"] == "LOGGED_ON"
    res = fixoms(cfg, "sessions", "resend", "CLIENT1", "--from", "5", "--to", "2", "--yes")
    assert res.exit_code == 2 and "--to 2 is before --from 5" in res.output
    res = fixoms(cfg, "sessions", "resend", "CLIENT1", "--from", "999999", "--yes")
    assert res.exit_code == 1 and "nothing to resend from 999999" in res.stderr


# --- hold / release ----------------------------------------------------------------------------------
def test_hold_refuses_new_orders_but_not_cancels_until_released(cfg: Path, client: FixClient) -> None:
    resting, _ = rest(client, "ACC-HOLD", 100, "142.00")
    out = ok(fixoms(cfg, "sessions", "hold", "CLIENT1", "--reason", "desk check", "--yes"))
    assert out.strip() == "session CLIENT1: trading ACTIVE -> HALTED (desk check)"
    assert session(cfg, "CLIENT1")["trading"] == "HALTED" and session(cfg, "CLIENT1")["state"] == "LOGGED_ON"
    cl = client.new_order("IBM", "1", 101, price="142.00", account="ACC-HOLD")
    refused = client.wait_report(cl, status=REJECTED)
    assert refused[codec.ORD_REJ_REASON] == "99"
    assert "the session is held by an operator" in refused[codec.TEXT]
    x = client.cancel(resting, "IBM", "1", 100)  # cancels still pass
    client.wait_report(x, status=CANCELED)
    res = fixoms(cfg, "sessions", "hold", "CLIENT1", "--yes")
    assert res.exit_code == 1 and "session CLIENT1 is already held" in res.stderr
    res = fixoms(cfg, "sessions", "hold", "VENUE-A", "--yes")
    assert res.exit_code == 1 and "VENUE-A is a venue session" in res.stderr
    res = fixoms(cfg, "sessions", "release", "CLIENT1", input="n\n")
    assert res.exit_code == 1 and session(cfg, "CLIENT1")["trading"] == "HALTED"
    out = ok(fixoms(cfg, "sessions", "release", "CLIENT1", "--reason", "checked", "--yes"))
    assert out.strip() == "session CLIENT1: trading HALTED -> ACTIVE (checked)"
    cl, _ = rest(client, "ACC-HOLD", 103, "142.00")  # accepted again
    x = client.cancel(cl, "IBM", "1", 103)
    client.wait_report(x, status=CANCELED)
    res = fixoms(cfg, "sessions", "release", "CLIENT1", "--yes")
    assert res.exit_code == 1 and "session CLIENT1 is not held (trading state ACTIVE)" in res.stderr
    admin = as_json(fixoms(cfg, "audit", "list", "--kind", "admin", "--limit", "200", "--json"))
    held = [r["summary"] for r in admin if r["summary"]["action"] == "sessions.hold" and r["summary"]["ok"]]
    assert held and held[-1]["after"] == "HALTED" and held[-1]["reason"] == "desk check"
    snap = as_json(fixoms(cfg, "risk", "show", "--json"))
    assert all(s["scope"] != "session:CLIENT1" for s in snap["states"])


# --- messages ----------------------------------------------------------------------------------------
def test_messages_filters_by_type_and_follows(cfg: Path, client: FixClient) -> None:
    cl, _ = rest(client, "ACC-MSG", 100, "143.00")
    orders = as_json(fixoms(cfg, "sessions", "messages", "CLIENT1", "--type", "D", "--limit", "3", "--json"))
    assert 0 < len(orders) <= 3 and all(m["msg_type"] == "D" and m["direction"] == "in" for m in orders)
    assert f"|11={cl}|" in orders[-1]["message"]
    reports = as_json(fixoms(cfg, "sessions", "messages", "CLIENT1", "--type", "8,9", "--json"))
    assert reports and all(m["msg_type"] in ("8", "9") and m["direction"] == "out" for m in reports)
    text = ok(fixoms(cfg, "sessions", "messages", "CLIENT1", "--type", "D", "--limit", "1"))
    (line,) = text.splitlines()
    assert " in " in line and "NewOrderSingle" in line and "|35=D|" in line and f"11={cl}" in line
    # --follow: a cancel sent while it runs is printed, then it stops at --count
    sender = threading.Timer(1.0, lambda: client.cancel(cl, "IBM", "1", 100))
    sender.start()
    try:
        out = ok(fixoms(cfg, "sessions", "messages", "CLIENT1", "--type", "F", "--limit", "1", "--follow",
                        "--count", "1", "--timeout", "30"))
    finally:
        sender.join()
    assert "OrderCancelRequest" in out and f"41={cl}" in out
    client.wait_for(lambda m: m.get(codec.ORIG_CL_ORD_ID) == cl and m.get(codec.ORD_STATUS) == CANCELED)
    res = fixoms(cfg, "sessions", "messages", "CLIENT1", "--follow", "--type", "ZZ", "--count", "1",
                 "--timeout", "0.5")
    assert res.exit_code == 1 and "stopped after 0.5s: 0 of 1 new messages" in res.stderr
    res = fixoms(cfg, "sessions", "messages", "CLIENT1", "--count", "1")
    assert res.exit_code == 2 and "--count and --timeout go with --follow" in res.output
    res = fixoms(cfg, "sessions", "messages", "NOPE")
    assert res.exit_code == 1 and "no session 'NOPE'" in res.stderr


def test_messages_read_the_file_with_the_engine_down(ostack: Stack, tmp_path: Path) -> None:
    # A config whose var_dir is the engine's and whose admin socket nobody serves.
    down = tmp_path / "down.sock"
    offline = write_config(tmp_path, ostack.db_url, down)
    text = offline.read_text().replace(f'var_dir = "{tmp_path / "cli-var"}"', f'var_dir = "{ostack.tmp / "engine"}"')
    offline.write_text(text)
    rows = as_json(CliRunner().invoke(cli, ["--config", str(offline), "--admin-socket", str(down), "sessions",
                                            "messages", "CLIENT1", "--limit", "2", "--json"]))
    assert len(rows) == 2 and all(r["message"].startswith("8=FIX.4.4|") for r in rows)
    res = CliRunner().invoke(cli, ["--config", str(offline), "--admin-socket", str(down), "sessions", "messages",
                                   "VENUE-Z"])
    assert res.exit_code == 1 and "no session 'VENUE-Z'" in res.stderr


# --- disconnect (late: it drops sessions) ------------------------------------------------------------
def test_disconnect_drops_the_connection_and_the_peer_comes_back(cfg: Path, client: FixClient) -> None:
    out = ok(fixoms(cfg, "sessions", "disconnect", "CLIENT1", "--yes"))
    assert "session CLIENT1: enabled yes -> yes; state LOGGED_ON -> DOWN" in out
    assert "still enabled: the client may log on again" in out
    assert client.app.logout_event.wait(10)
    wait_until(lambda: session(cfg, "CLIENT1")["state"] == "LOGGED_ON", what="CLIENT1 logged on again")
    assert client.app.logon_event.wait(10)
    still_trading(client, "ACC-DISC")
    out = ok(fixoms(cfg, "sessions", "disconnect", "VENUE-A", "--yes"))
    assert "state LOGGED_ON -> DOWN" in out and "we reconnect by ourselves" in out
    wait_until(lambda: session(cfg, "VENUE-A")["state"] == "LOGGED_ON", what="VENUE-A reconnected")
    res = fixoms(cfg, "sessions", "disconnect", "CLIENT2", "--yes")
    assert res.exit_code == 1 and "session CLIENT2 is not logged on" in res.stderr
    res = fixoms(cfg, "sessions", "disconnect", "CLIENT1", input="n\n")
    assert res.exit_code == 1 and "cancel-on-disconnect" in res.output


def test_new_commands_need_the_engine(tmp_path: Path, cfg: Path) -> None:
    missing = tmp_path / "none.sock"
    p = run_fixoms(cfg, "--admin-socket", str(missing), "sessions", "hold", "CLIENT1", "--yes")
    assert p.returncode == 1 and p.stderr == f"error: engine not running: no admin socket at {missing}\n"
    for args in (("sessions", "list", "--watch", "--count", "1"), ("sessions", "disconnect", "CLIENT1", "--yes"),
                 ("sessions", "sequence-reset", "CLIENT1", "--new-seqno", "9", "--yes"),
                 ("sessions", "resend", "CLIENT1", "--from", "1", "--yes"), ("sessions", "test-request", "CLIENT1"),
                 ("sessions", "release", "CLIENT1", "--yes"), ("jobs", "run", "rotate_logs", "--yes")):
        res = CliRunner().invoke(cli, ["--config", str(cfg), "--admin-socket", str(missing), *args])
        assert res.exit_code == 1 and "engine not running: no admin socket at" in res.stderr, args
    p = run_fixoms(cfg, "sessions", "nope-command")
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


# --- log rotation ------------------------------------------------------------------------------------
def test_rotate_logs_job_backs_up_and_compresses_the_fix_logs(cfg: Path, ostack: Stack, client: FixClient) -> None:
    log_dir = ostack.tmp / "engine" / "log"
    current = log_dir / "FIX.4.4-FIXOMS-CLIENT1.messages.current.log"
    assert current.stat().st_size > 0
    stale = log_dir / "FIX.4.4-FIXOMS-CLIENT1.messages.20000101-000000.1.log.gz"
    stale.write_bytes(gzip.compress(b"old\n"))
    os.utime(stale, (time.time() - 40 * 86400,) * 2)  # older than the 30 days kept
    out = ok(fixoms(cfg, "jobs", "run", "rotate_logs", "--yes"))
    assert out.startswith("job rotate_logs ran: open orders ")
    detail = dict(part.split() for part in out.splitlines()[1].split(", "))
    assert int(detail["rotated"]) >= 5 and int(detail["compressed"]) >= 1 and detail["deleted"] == "1"
    assert not stale.exists()
    archived = sorted(log_dir.glob("FIX.4.4-FIXOMS-CLIENT1.messages.*.log.gz"))
    assert archived and b"35=A" in gzip.decompress(archived[-1].read_bytes())
    assert not list(log_dir.glob("*.backup.*.log"))
    # QuickFIX writes on into the fresh file
    ok(fixoms(cfg, "sessions", "test-request", "CLIENT1"))
    wait_until(lambda: b"35=1\x01" in current.read_bytes(), what="the TestRequest in the new log file")
    assert b"35=A\x01" not in current.read_bytes()


def test_rotate_logs_rotates_the_engine_log_under_a_watched_handler(tmp_path: Path) -> None:
    engine_log = tmp_path / "fixoms.log"
    logger = logging.getLogger("test.rotation")
    handler = logging.handlers.WatchedFileHandler(engine_log)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("before rotation")
        result = rotate_logs([], engine_log, retention_days=30)
        logger.warning("after rotation")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert result == {"rotated": 1, "compressed": 1, "deleted": 0}
    (archive,) = tmp_path.glob("fixoms.log.*.gz")
    assert gzip.decompress(archive.read_bytes()) == b"before rotation\n"
    assert engine_log.read_text() == "after rotation\n"
    assert rotate_logs([], tmp_path / "absent.log", retention_days=30) == {"rotated": 0, "compressed": 0,
                                                                            "deleted": 0}


# --- JSON logs ---------------------------------------------------------------------------------------
def test_run_writes_json_logs_and_rotate_logs_rotates_them(tmp_path: Path) -> None:
    sock = tmp_path / "run.sock"
    engine_log = tmp_path / "engine.log"
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'run.db'}", sock, sessions=sessions_on_free_ports(tmp_path),
                       extra='\n[logging]\nformat = "text"\n')
    proc = start_run(cfg, sock, tmp_path, "--log-format", "json", "--log-file", str(engine_log),
                     options=("--log-level", "INFO"))
    try:
        lines = [json.loads(ln) for ln in engine_log.read_text().splitlines()]
        assert lines and all({"ts", "level", "logger", "event"} <= set(r) for r in lines)
        assert any(r["event"].startswith("admin socket listening at") and r["logger"] == "fixoms.admin"
                   for r in lines)
        p = subprocess.run([*cli_command(cfg), "jobs", "run", "rotate_logs", "--yes"], capture_output=True, text=True,
                           env=CLI_ENV, timeout=60)
        assert p.returncode == 0, p.stderr
        wait_until(lambda: engine_log.exists() and "logs rotated" in engine_log.read_text(), what="a new log file")
        rotated = json.loads(next(ln for ln in engine_log.read_text().splitlines() if "logs rotated" in ln))
        assert rotated["level"] == "INFO" and rotated["logger"] == "fixoms.jobs" and rotated["rotated"] >= 1
        (archive,) = tmp_path.glob("engine.log.*.gz")
        assert b"admin socket listening at" in gzip.decompress(archive.read_bytes())
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0

