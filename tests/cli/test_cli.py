"""The operator CLI against a real running engine: two venue simulators, the engine with its admin socket,
FIX clients on loopback. Commands run through click's CliRunner (in process) and, where the exact
one-line error and exit code of `fixoms` matter, as a subprocess.

One stack serves the module (SQLite); tests use their own accounts so they do not disturb each other.
The last tests change the journal (a tampered audit row): keep them last.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from fix_engine import codec
from fix_engine.client import FixClient
from fixoms.admin import SOCKET_ENV, AdminClient
from fixoms.cli import cli
from oms.enums import Side
from oms.queries import load_credentials
from oms.schema import audit_t, make_engine
from tests.conftest import PASSWORDS, ROOT, Stack, run_stack

NEW, PARTIAL, FILLED, CANCELED, REJECTED, PCANCEL = "0", "1", "2", "4", "8", "6"


def module_stack(tmp: Path) -> Iterator[Stack]:
    """A stack for a whole test module. conftest's Stack keeps the repository's admin_socket; this
    engine serves its own, in `tmp`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SOCKET_ENV, str(tmp / "admin.sock"))
        yield from run_stack(tmp, f"sqlite:///{tmp / 'journal.db'}")


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def cfg(cstack: Stack) -> Path:
    return write_config(cstack.tmp, cstack.db_url, cstack.tmp / "admin.sock")


def write_config(tmp: Path, db_url: str, sock: Path, extra: str = "", sessions: Path = ROOT / "sessions.cfg") -> Path:
    path = tmp / "fixoms-cli.toml"
    path.write_text(f"""
[engine]
instance = "OMS1"
sessions = "{sessions}"
var_dir = "{tmp / 'cli-var'}"
admin_socket = "{sock}"

[database]
url = "{db_url}"

[schedule]
timezone = "America/New_York"

[settlement]
cycle_days = 1
holidays = ["2030-01-02"]

[symbols]
AAPL = {{ venue = "VENUE-A", reference = "190.00" }}
IBM = {{ venue = "VENUE-B", reference = "150.00" }}

[accounts]
CLIENT1 = "ACC-1"
CLIENT2 = "ACC-2"
{extra}
""")
    return path


@pytest.fixture(scope="module")
def client(cstack: Stack) -> FixClient:
    return cstack.client()


def fixoms(cfg: Path, *args: str, input: str | None = None) -> Result:
    """`fixoms --config CFG ARGS...` in process; wide columns so tables do not wrap."""
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], input=input, env={"COLUMNS": "250"})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def cli_command(cfg: Path) -> list[str]:
    return [sys.executable, "-c", "from fixoms.cli import main; main()", "--config", str(cfg)]


def run_fixoms(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `fixoms` entry point (its one-line errors and exit codes) in a subprocess."""
    return subprocess.run([*cli_command(cfg), *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def engine_events(stack: Stack, counterparty: str) -> list[str]:
    """The engine's QuickFIX event log of the session with `counterparty` (FileLog, flushed per line)."""
    (path,) = (stack.tmp / "engine" / "log").glob(f"*-FIXOMS-{counterparty}.event.current.log")
    return path.read_text().splitlines()


def session(cfg: Path, key: str) -> dict[str, Any]:
    return next(s for s in as_json(fixoms(cfg, "sessions", "list", "--json")) if s["id"] == key)


def sim(stack: Stack, name: str = "VENUE-B") -> Any:
    return next(s.app for s in stack.sims if s.app.name == name)


def rest(client: FixClient, account: str, qty: int = 100, price: str = "150.00", side: str = "1") -> tuple[str, str]:
    """A resting IBM limit order: (ClOrdID, OrderID)."""
    cl = client.new_order("IBM", side, qty, price=price, account=account)
    ack = client.wait_report(cl, status=NEW)
    return cl, ack[codec.ORDER_ID]


# --- the admin socket itself ------------------------------------------------------------------------
def test_admin_socket_is_private_and_speaks_json_lines(cstack: Stack) -> None:
    path = cstack.tmp / "admin.sock"
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b'{"action": "ping"}\nnot json\n{"action": "nope"}\n')
        buf = b""
        while buf.count(b"\n") < 3:
            chunk = s.recv(65536)  # b"" once the engine closed the socket: no more answers will come
            assert chunk, f"admin socket closed before the 3 answers came: {buf!r}"
            buf += chunk
    ping, bad, unknown = (json.loads(line) for line in buf.splitlines())
    assert ping["ok"] and ping["result"]["user"] == getpass.getuser() and ping["result"]["instance"] == "OMS1"
    assert not bad["ok"] and bad["error"].startswith("bad request")
    assert not unknown["ok"] and "unknown action 'nope'" in unknown["error"]
    assert AdminClient(path).call("ping")["pid"] == os.getpid()


# --- sessions ---------------------------------------------------------------------------------------
def test_sessions_list_table_and_json(cfg: Path, cstack: Stack, client: FixClient) -> None:
    rows = {s["id"]: s for s in as_json(fixoms(cfg, "sessions", "list", "--json"))}
    assert set(rows) == {"CLIENT1", "CLIENT2", "DROPCOPY1", "VENUE-A", "VENUE-B"}
    c1 = rows["CLIENT1"]
    assert (c1["role"], c1["enabled"], c1["state"], c1["remote"], c1["heartbeat"]) == (
        "client", True, "LOGGED_ON", "127.0.0.1", 30)
    assert c1["next_sender_seq"] >= 2 and c1["next_target_seq"] >= 2
    assert rows["CLIENT2"]["state"] == "DOWN"
    venue = rows["VENUE-A"]
    assert (venue["role"], venue["state"], venue["remote"]) == (
        "venue", "LOGGED_ON", f"127.0.0.1:{cstack.venue_ports['VENUE-A']}")
    table = ok(fixoms(cfg, "sessions", "list"))
    assert "5 sessions" in table
    line = next(ln for ln in table.splitlines() if "CLIENT1" in ln)
    for word in ("client", "yes", "LOGGED_ON", "127.0.0.1", "30"):
        assert word in line, line


def test_sessions_show(cfg: Path, client: FixClient) -> None:
    data = as_json(fixoms(cfg, "sessions", "show", "CLIENT1", "--json"))
    assert (data["begin_string"], data["sender"], data["target"]) == ("FIX.4.4", "FIXOMS", "CLIENT1")
    assert data["credential"] == {"username": "CLIENT1", "allowed_addresses": []}
    assert data["settings"]["ConnectionType"] == "acceptor"
    text = ok(fixoms(cfg, "sessions", "show", "CLIENT1"))
    assert "username CLIENT1, addresses any" in text
    res = fixoms(cfg, "sessions", "show", "NOPE")
    assert res.exit_code == 1 and "no session 'NOPE'" in res.stderr


def test_disable_logs_a_client_out_with_the_reason_and_it_stays_down_until_enabled(
        cfg: Path, cstack: Stack, client: FixClient) -> None:
    c = client
    if True:
        def refusals() -> int:  # QuickFIX's event for each Logon a disabled session gets
            return sum("Session is not enabled for logon" in line for line in engine_events(cstack, "CLIENT1"))

        before = refusals()
        out = ok(fixoms(cfg, "sessions", "disable", "CLIENT1", "--reason", "end of day maintenance", "--yes"))
        assert "session CLIENT1: enabled yes -> no; state LOGGED_ON -> DOWN" in out
        logout = c.app.admin.get(timeout=10)
        while logout.get(codec.MSG_TYPE) != "5":
            logout = c.app.admin.get(timeout=10)
        assert logout.get(58) == "end of day maintenance"
        # the client retries every second: two of its Logons arrived and were refused
        wait_until(lambda: refusals() >= before + 2, what="two refused logons of CLIENT1")
        assert session(cfg, "CLIENT1")["state"] == "DOWN" and not c.logged_on
        out = ok(fixoms(cfg, "sessions", "enable", "CLIENT1", "--yes"))
        assert "enabled no -> yes" in out
        wait_until(lambda: session(cfg, "CLIENT1")["state"] == "LOGGED_ON", what="CLIENT1 back")
        assert c.app.logon_event.wait(10)


def test_a_disabled_venue_stays_down_and_reconnects_when_enabled(cfg: Path, cstack: Stack) -> None:
    def connects(venue: str) -> int:  # QuickFIX's event for each connection attempt of our initiator
        return sum("Connecting to" in line for line in engine_events(cstack, venue))

    out = ok(fixoms(cfg, "sessions", "disable", "VENUE-A", "--reason", "venue maintenance", "--yes"))
    assert "session VENUE-A: enabled yes -> no; state LOGGED_ON -> DOWN" in out
    tried = connects("VENUE-A")
    # The initiator reconnects every session it has down and enabled in one pass (ReconnectInterval 1 s):
    # drop VENUE-B, and once it is back a pass has run with VENUE-A down too - it did not try VENUE-A.
    back = connects("VENUE-B")
    ok(fixoms(cfg, "sessions", "disconnect", "VENUE-B", "--yes"))
    wait_until(lambda: connects("VENUE-B") > back and session(cfg, "VENUE-B")["state"] == "LOGGED_ON",
               what="VENUE-B reconnected")
    assert connects("VENUE-A") == tried, "the initiator tried to connect the disabled VENUE-A"
    assert session(cfg, "VENUE-A")["state"] == "DOWN"
    out = ok(fixoms(cfg, "sessions", "enable", "VENUE-A", "--yes"))
    assert "enabled no -> yes" in out
    wait_until(lambda: session(cfg, "VENUE-A")["state"] == "LOGGED_ON", what="VENUE-A back")


def test_disable_and_enable_all_sessions(cfg: Path, client: FixClient) -> None:
    for args in ((), ("CLIENT1", "--all")):
        res = fixoms(cfg, "sessions", "disable", *args, "--yes")
        assert res.exit_code == 2 and "disable needs a SESSION_ID or --all (not both)" in res.output
    out = ok(fixoms(cfg, "sessions", "disable", "--all", "--reason", "firm-wide stop", "--yes"))
    for sid in ("CLIENT1", "VENUE-A", "VENUE-B"):
        assert f"session {sid}: enabled yes -> no; state LOGGED_ON -> DOWN" in out
    assert "down until `fixoms sessions enable --all`" in out
    rows = {r["id"]: r for r in as_json(fixoms(cfg, "sessions", "list", "--json"))}
    assert all(not r["enabled"] and r["state"] == "DOWN" for r in rows.values()), rows
    out = ok(fixoms(cfg, "sessions", "enable", "--all", "--yes"))
    assert out.count("enabled no -> yes") == len(rows)
    for sid in ("CLIENT1", "VENUE-A", "VENUE-B"):
        wait_until(lambda sid=sid: bool(session(cfg, sid)["state"] == "LOGGED_ON"),  # type: ignore[misc]
                   what=f"{sid} back")
    assert client.app.logon_event.wait(10)


def test_seqnum_refuses_lowering_the_target_and_logged_on_sessions_without_force(cfg: Path) -> None:
    res = fixoms(cfg, "sessions", "seqnum", "VENUE-A", "--sender", "500", "--yes")
    assert res.exit_code == 1 and "VENUE-A is logged on" in res.stderr and "--force" in res.stderr
    before = session(cfg, "CLIENT2")  # never connected in this module: down
    target = before["next_target_seq"]
    out = ok(fixoms(cfg, "sessions", "seqnum", "CLIENT2", "--sender", "40", "--target", str(target + 10), "--yes"))
    assert f"next_sender_seq {before['next_sender_seq']} -> 40" in out
    assert f"next_target_seq {target} -> {target + 10}" in out
    res = fixoms(cfg, "sessions", "seqnum", "CLIENT2", "--target", str(target + 5), "--yes")
    assert res.exit_code == 1 and "would accept old messages again" in res.stderr
    ok(fixoms(cfg, "sessions", "seqnum", "CLIENT2", "--target", str(target + 5), "--force", "--yes"))
    assert session(cfg, "CLIENT2")["next_target_seq"] == target + 5
    # confirmation: "n" leaves it alone
    res = fixoms(cfg, "sessions", "seqnum", "CLIENT2", "--target", "99", input="n\n")
    assert res.exit_code == 1 and "Aborted" in res.output
    assert session(cfg, "CLIENT2")["next_target_seq"] == target + 5
    out = ok(fixoms(cfg, "sessions", "reset", "CLIENT2", "--yes"))
    assert f"next_target_seq {target + 5} -> 1" in out and "next_sender_seq" in out
    assert session(cfg, "CLIENT2")["next_sender_seq"] == 1


def test_bad_argument_is_one_line_with_exit_2(cfg: Path) -> None:
    p = run_fixoms(cfg, "sessions", "seqnum", "CLIENT2", "--target", "0", "--yes")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ") and "'--target'" in p.stderr, p.stderr
    p = run_fixoms(cfg, "orders", "cancel-all", "--yes")
    assert p.returncode == 2 and "needs an explicit scope" in p.stderr


def test_engine_not_running_is_one_clear_line(tmp_path: Path, cfg: Path) -> None:
    missing = tmp_path / "none.sock"
    p = run_fixoms(cfg, "--admin-socket", str(missing), "sessions", "list")
    assert p.returncode == 1
    assert p.stderr == f"error: engine not running: no admin socket at {missing}\n"
    for args in (("risk", "show"), ("jobs", "list"), ("orders", "cancel", "X", "--yes"),
                 ("risk", "halt", "--scope", "firm", "--reason", "x", "--yes")):
        res = CliRunner().invoke(cli, ["--config", str(cfg), "--admin-socket", str(missing), *args])
        assert res.exit_code == 1 and "engine not running: no admin socket at" in res.stderr, args


def sessions_on_free_ports(tmp: Path) -> Path:
    """The repository's sessions.cfg with free ports, for an engine of a test's own."""
    from fixoms.netutil import free_port

    text = (ROOT / "sessions.cfg").read_text()
    for port in ("9878", "9881", "9882"):
        text = text.replace(port, str(free_port()))
    (tmp / "sessions.cfg").write_text(text)
    return tmp / "sessions.cfg"


CLI_ENV = {k: v for k, v in os.environ.items() if k != SOCKET_ENV} | {"PYTHONPATH": str(ROOT)}


def start_run(cfg: Path, sock: Path, cwd: Path, *run_args: str, options: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """`fixoms run` as a subprocess; returns once its admin socket answers (the caller terminates it)."""
    proc = subprocess.Popen([*cli_command(cfg), *options, "run", *run_args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=CLI_ENV, cwd=cwd)

    def up() -> bool:
        assert proc.poll() is None, proc.communicate()
        try:
            return bool(AdminClient(sock).call("ping"))
        except Exception:
            return False

    try:
        wait_until(up, 60, "the engine's admin socket")
    except BaseException:
        proc.terminate()
        proc.communicate(timeout=60)
        raise
    return proc


def test_fixoms_run_serves_the_admin_socket_and_removes_it_on_stop(tmp_path: Path) -> None:
    sock = tmp_path / "run.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:  # left behind by a killed engine
        stale.bind(str(sock))
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'run.db'}", sock, sessions=sessions_on_free_ports(tmp_path))
    proc = start_run(cfg, sock, tmp_path)
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        p = subprocess.run([*cli_command(cfg), "sessions", "list", "--json"], capture_output=True, text=True,
                           env=CLI_ENV, timeout=60)
        assert p.returncode == 0, p.stderr
        rows = {r["id"]: r for r in json.loads(p.stdout)}
        assert set(rows) == {"CLIENT1", "CLIENT2", "DROPCOPY1", "VENUE-A", "VENUE-B"}
        assert rows["VENUE-A"]["state"] == "DOWN"  # no venue listens in this test
    finally:
        proc.terminate()
        out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    assert f"admin socket {sock}" in out
    assert not sock.exists()


# --- orders ---------------------------------------------------------------------------------------------
def test_orders_list_filters_and_operator_cancel(cfg: Path, client: FixClient) -> None:
    cl, order_id = rest(client, "ACC-OC", 100, "150.00")
    rows = as_json(fixoms(cfg, "orders", "list", "--open", "--account", "ACC-OC", "--symbol", "IBM",
                          "--session", "CLIENT1", "--json"))
    assert [r["order_id"] for r in rows] == [order_id]
    assert as_json(fixoms(cfg, "orders", "list", "--account", "ACC-OC", "--symbol", "AAPL", "--json")) == []
    # by venue (IBM goes to VENUE-B), and watched: one JSON array a line per redraw
    assert [r["order_id"] for r in as_json(fixoms(cfg, "orders", "list", "--account", "ACC-OC", "--venue",
                                                  "VENUE-B", "--json"))] == [order_id]
    assert as_json(fixoms(cfg, "orders", "list", "--account", "ACC-OC", "--venue", "VENUE-A", "--json")) == []
    watched = ok(fixoms(cfg, "orders", "list", "--account", "ACC-OC", "--watch", "--interval", "0.1", "--count", "2",
                        "--json")).splitlines()
    assert len(watched) == 2 and all([r["order_id"] for r in json.loads(line)] == [order_id] for line in watched)
    assert "1 orders at " in ok(fixoms(cfg, "orders", "list", "--account", "ACC-OC", "--watch", "--count", "1"))
    # asked, refused: nothing happens
    res = fixoms(cfg, "orders", "cancel", order_id, input="n\n")
    assert res.exit_code == 1 and f"cancel {order_id} (CLIENT1 ACC-OC BUY 100 IBM @ 150.00, NEW" in res.output
    out = ok(fixoms(cfg, "orders", "cancel", order_id, "--reason", "fat finger", "--yes"))
    assert out.startswith(f"order {order_id}: NEW -> ")
    assert out.split("-> ")[1].split()[0] in ("PENDING_CANCEL", "CANCELED")
    done = client.wait_report(cl, status=CANCELED)
    assert "fat finger" in done.get(codec.TEXT, "")
    res = fixoms(cfg, "orders", "cancel", order_id, "--yes")
    assert res.exit_code == 1 and f"order {order_id} is CANCELED: nothing to cancel" in res.stderr
    res = fixoms(cfg, "orders", "cancel", "NOPE-1", "--yes")
    assert res.exit_code == 1 and "no order NOPE-1" in res.stderr
    shown = as_json(fixoms(cfg, "orders", "show", order_id, "--json"))
    assert shown["status"] == "CANCELED"


def test_cancel_all_needs_a_scope_and_cancels_only_it(cfg: Path, client: FixClient) -> None:
    res = fixoms(cfg, "orders", "cancel-all", "--yes")
    assert res.exit_code == 2 and "cancel-all needs an explicit scope" in res.output
    a = [rest(client, "ACC-CA", 100 + i, "149.50") for i in range(3)]
    keep = rest(client, "ACC-CB", 100, "149.50")
    out = ok(fixoms(cfg, "orders", "cancel-all", "--account", "ACC-CA", "--symbol", "IBM", "--yes"))
    assert "3 open orders of account ACC-CA, symbol IBM: cancel requested" in out
    for cl, _ in a:
        client.wait_report(cl, status=CANCELED)
    assert [r["order_id"] for r in as_json(fixoms(cfg, "orders", "list", "--open", "--account", "ACC-CB",
                                                  "--json"))] == [keep[1]]
    out = ok(fixoms(cfg, "orders", "cancel-all", "--account", "ACC-CA", "--yes"))
    assert "0 open orders of account ACC-CA" in out
    ok(fixoms(cfg, "orders", "cancel-all", "--account", "ACC-CB", "--yes"))
    client.wait_report(keep[0], status=CANCELED)


def test_cancel_all_by_venue_cancels_the_orders_working_there(cfg: Path, client: FixClient) -> None:
    at_b = rest(client, "ACC-CV", 100, "149.50")  # IBM: VENUE-B
    cl = client.new_order("AAPL", "1", 100, price="189.00", account="ACC-CV")  # AAPL: VENUE-A
    at_a = (cl, client.wait_report(cl, status=NEW)[codec.ORDER_ID])
    out = ok(fixoms(cfg, "orders", "cancel-all", "--venue", "VENUE-A", "--yes"))
    assert "1 open orders of venue VENUE-A: cancel requested" in out and at_a[1] in out
    client.wait_report(at_a[0], status=CANCELED)
    assert [r["order_id"] for r in as_json(fixoms(cfg, "orders", "list", "--open", "--account", "ACC-CV",
                                                  "--json"))] == [at_b[1]]
    ok(fixoms(cfg, "orders", "cancel-all", "--account", "ACC-CV", "--yes"))
    client.wait_report(at_b[0], status=CANCELED)


# --- risk -----------------------------------------------------------------------------------------------
def test_risk_show_set_and_a_bad_limit(cfg: Path, client: FixClient) -> None:
    snap = as_json(fixoms(cfg, "risk", "show", "--json"))
    assert snap["firm"]["state"] == "ACTIVE" and "ACC-1" in snap["accounts"]
    out = ok(fixoms(cfg, "risk", "set", "ACC-RS", "max_order_qty", "500", "--yes"))
    assert out.strip() == "ACC-RS max_order_qty: 100000 -> 500"
    cl = client.new_order("IBM", "1", 501, price="150.00", account="ACC-RS")
    refused = client.wait_report(cl, status=REJECTED)
    assert "max order quantity 500" in refused[codec.TEXT]
    res = fixoms(cfg, "risk", "set", "ACC-RS", "max_bananas", "1", "--yes")
    assert res.exit_code == 1 and "unknown risk limit 'max_bananas'" in res.stderr
    table = ok(fixoms(cfg, "risk", "show"))
    line = next(ln for ln in table.splitlines() if "ACC-RS" in ln)
    assert "ACTIVE" in line and "500" in line


def test_halt_with_cancel_open_then_resume(cfg: Path, client: FixClient) -> None:
    cl, _ = rest(client, "ACC-H", 100, "149.00")
    res = fixoms(cfg, "risk", "halt", "--scope", "account:ACC-H", "--yes")
    assert res.exit_code == 2 and "--reason" in res.output
    out = ok(fixoms(cfg, "risk", "halt", "--scope", "account:ACC-H", "--reason", "runaway algo", "--cancel-open",
                    "--yes"))
    assert out.strip() == "account:ACC-H: ACTIVE -> HALTED (runaway algo); 1 open orders canceled"
    client.wait_report(cl, status=CANCELED)
    cl2 = client.new_order("IBM", "1", 100, price="149.00", account="ACC-H")
    assert client.wait_report(cl2, status=REJECTED)[codec.ORD_REJ_REASON] == "99"
    snap = as_json(fixoms(cfg, "risk", "show", "--json"))
    halted = next(s for s in snap["states"] if s["scope"] == "account:ACC-H")
    assert (halted["state"], halted["who"], halted["reason"]) == ("HALTED", getpass.getuser(), "runaway algo")
    assert "account:ACC-H: HALTED -> REDUCING" in ok(fixoms(cfg, "risk", "reduce", "--scope", "account:ACC-H",
                                                            "--reason", "unwind", "--yes"))
    assert "account:ACC-H: REDUCING -> ACTIVE" in ok(fixoms(cfg, "risk", "resume", "--scope", "account:ACC-H",
                                                            "--reason", "fixed", "--yes"))
    res = fixoms(cfg, "risk", "halt", "--scope", "galaxy:far", "--reason", "x", "--yes")
    assert res.exit_code == 1 and "unknown scope" in res.stderr
    _, order_id = rest(client, "ACC-H", 101, "149.00")  # trading again
    ok(fixoms(cfg, "orders", "cancel", order_id, "--yes"))


# --- positions ------------------------------------------------------------------------------------------
def test_positions_from_real_fills_with_a_bust(cfg: Path, cstack: Stack, client: FixClient) -> None:
    venue = sim(cstack)
    cl, order_id = rest(client, "ACC-P", 1000, "150.00")
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 400)
    client.wait_report(cl, status=PARTIAL)
    venue.house_order("IBM", Side.SELL, Decimal("150.00"), 600)
    client.wait_report(cl, status=FILLED)
    # the venue busts the 600: the engine reopens it; the operator cancels the reopened quantity
    child = as_json(fixoms(cfg, "orders", "show", order_id, "--json"))["children"][0]["child_id"]
    venue.bust_last_fill("FIXOMS", child)
    client.wait_for(lambda m: m.get(codec.CL_ORD_ID) == cl and m.get(codec.EXEC_TYPE) == "H")
    wait_until(lambda: as_json(fixoms(cfg, "orders", "show", order_id, "--json"))["status"] in ("NEW", "PARTIALLY_FILLED"),
               what="reopened order")
    ok(fixoms(cfg, "orders", "cancel", order_id, "--yes"))
    client.wait_report(cl, status=CANCELED)
    # sell 100 into the house bid (marketable limit): fills at the venue's price
    sell = client.new_order("IBM", "2", 100, price="149.00", account="ACC-P")
    fill = client.wait_report(sell, status=FILLED)
    px = Decimal(fill[codec.LAST_PX])
    data = as_json(fixoms(cfg, "positions", "--account", "ACC-P", "--mark", "IBM=151", "--trades", "--json"))
    (pos,) = data["positions"]
    assert (pos["account"], pos["symbol"], pos["qty"], pos["avg_cost"], pos["mark"]) == ("ACC-P", "IBM", "300",
                                                                                         "150", "151")
    assert Decimal(pos["realized"]) == ((px - 150) * 100).quantize(Decimal("0.01"))
    assert pos["unrealized"] == "300.00"  # (151 - 150) x 300
    assert [t["qty"] for t in data["trades"]] == ["400", "100"]  # the busted 600 does not count
    assert all(t["settle_date"] > t["trade_date"] for t in data["trades"])
    table = ok(fixoms(cfg, "positions", "--account", "ACC-P", "--mark", "IBM=151"))
    line = next(ln for ln in table.splitlines() if "ACC-P" in ln)
    assert "300" in line and "300.00" in line
    res = fixoms(cfg, "positions", "--mark", "IBM")
    assert res.exit_code == 2 and "SYMBOL=PRICE" in res.output


# --- jobs and config ------------------------------------------------------------------------------------
def test_jobs_list_and_run(cfg: Path) -> None:
    rows = as_json(fixoms(cfg, "jobs", "list", "--json"))
    assert {r["id"] for r in rows} == {"expire_day", "renew_gt", "expire_gtd", "eod_report", "rotate_logs"}
    assert "expire_day" in ok(fixoms(cfg, "jobs", "list"))
    out = ok(fixoms(cfg, "jobs", "run", "expire_gtd", "--yes"))
    assert out.startswith("job expire_gtd ran: open orders ")
    res = fixoms(cfg, "jobs", "run", "nope", "--yes")
    assert res.exit_code == 1 and "unknown job 'nope'" in res.stderr


def test_config_check(cfg: Path, tmp_path: Path) -> None:
    checks = as_json(fixoms(cfg, "config", "check", "--json"))
    assert {c["check"]: c["result"] for c in checks}["sessions.cfg"] == "OK"
    # `make install` installs QuickFIX built with native/quickfix/guard.patch
    assert {c["check"]: c["result"] for c in checks}["quickfix"] == "OK", checks
    assert "checks passed" in ok(fixoms(cfg, "config", "check", "--connect"))
    bad = write_config(tmp_path, "sqlite:///x.db", tmp_path / "a.sock", extra='\n[symbols.TSLA]\nvenue = "VENUE-X"\n')
    res = fixoms(bad, "config", "check")
    assert res.exit_code == 1 and "routed to venues with no initiator session: VENUE-X" in res.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine\n")
    res = fixoms(broken, "config", "check")
    assert res.exit_code == 1 and "fixoms.toml" in res.stdout


def test_engine_cpus_are_checked(tmp_path: Path) -> None:
    from fixoms.config import ConfigError, from_dict

    usable = sorted(os.sched_getaffinity(0))
    assert from_dict({"engine": {"cpus": [usable[-1]]}}, tmp_path).engine_cpus == (usable[-1],)
    assert from_dict({}, tmp_path).engine_cpus == ()
    for bad in ([usable[-1] + 1], [usable[0], usable[0]], "0", [True], [-1]):
        with pytest.raises(ConfigError, match=r"\[engine\] cpus must be a list of CPU numbers this process may use"):
            from_dict({"engine": {"cpus": bad}}, tmp_path)
    broken = write_config(tmp_path, "sqlite:///x.db", tmp_path / "a.sock", extra="")
    broken.write_text(broken.read_text().replace("[engine]\n", "[engine]\ncpus = [999]\n", 1))
    res = fixoms(broken, "config", "check")
    assert res.exit_code == 1 and "[engine] cpus must be a list of CPU numbers" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


# --- credentials ----------------------------------------------------------------------------------------
def test_password_is_picked_up_after_reload_credentials(cfg: Path, cstack: Stack) -> None:
    res = fixoms(cfg, "sessions", "password", "VENUE-A", "--password-stdin", "--yes", input="x\n")
    assert res.exit_code == 1 and "VENUE-A is not a client session" in res.stderr
    out = ok(fixoms(cfg, "sessions", "password", "CLIENT1", "--username", "desk-7", "--password-stdin", "--yes",
                    input="s3cret-new\n"))
    assert "credential of CLIENT1 set (username desk-7, addresses any)" in out
    assert "only after `fixoms sessions reload-credentials`" in out
    stored = load_credentials(make_engine(cstack.db_url))["CLIENT1"]
    assert stored.username == "desk-7" and "s3cret-new" not in (stored.salt + stored.hash)
    assert as_json(fixoms(cfg, "sessions", "show", "CLIENT1", "--json"))["credential"]["username"] == "CLIENT1"
    out = ok(fixoms(cfg, "sessions", "reload-credentials", "--yes"))
    assert out.strip() == "credentials: 3 -> 3 (added none; changed CLIENT1; removed none)"
    assert as_json(fixoms(cfg, "sessions", "show", "CLIENT1", "--json"))["credential"]["username"] == "desk-7"
    # put the test password back for any later logon
    ok(fixoms(cfg, "sessions", "password", "CLIENT1", "--password-stdin", "--yes", input=PASSWORDS["CLIENT1"] + "\n"))
    ok(fixoms(cfg, "sessions", "reload-credentials", "--yes"))


def test_password_without_a_running_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'offline.db'}"
    offline = write_config(tmp_path, url, tmp_path / "down.sock")
    out = ok(fixoms(offline, "--admin-socket", str(tmp_path / "down.sock"), "sessions", "password", "CLIENT2", "--address", "10.0.0.5, 10.0.0.6",
                    input="pw-2\npw-2\ny\n"))
    assert "credential of CLIENT2 set (username CLIENT2, addresses 10.0.0.5,10.0.0.6)" in out
    assert "the engine is not running: it reads the credential when it starts" in out
    cred = load_credentials(make_engine(url))["CLIENT2"]
    assert cred.allowed_addresses == frozenset({"10.0.0.5", "10.0.0.6"})
    assert ok(fixoms(offline, "audit", "verify")).strip().startswith("OMS1: 1 rows, chain intact")
    (row,) = as_json(fixoms(offline, "audit", "list", "--json"))
    assert row["who"] == getpass.getuser() and row["summary"]["action"] == "credentials.set"
    assert "pw-2" not in json.dumps(row)


# --- audit (last: the tamper test edits the journal) ------------------------------------------------------
def test_every_admin_action_is_audited_with_the_os_user(cfg: Path) -> None:
    rows = as_json(fixoms(cfg, "audit", "list", "--kind", "admin", "--limit", "500", "--json"))
    actions = [r["summary"]["action"] for r in rows]
    for action in ("sessions.list", "sessions.disable", "sessions.seqnum", "orders.cancel", "orders.cancel_all",
                   "risk.set", "risk.state", "credentials.set", "credentials.reload", "jobs.run"):
        assert action in actions, action
    assert {r["who"] for r in rows} == {getpass.getuser()}
    halt = next(r["summary"] for r in rows if r["summary"]["action"] == "risk.state"
                and r["summary"].get("after") == "HALTED")
    assert (halt["before"], halt["scope"], halt["reason"], halt["canceled"]) == ("ACTIVE", "account:ACC-H",
                                                                               "runaway algo", 1)
    refused = next(r["summary"] for r in rows if r["summary"]["action"] == "risk.set" and not r["summary"]["ok"])
    assert "max_bananas" in refused["error"]
    assert all("password" not in r["summary"].get("args", {}) for r in rows)
    inbound = as_json(fixoms(cfg, "audit", "list", "--kind", "inbound", "--limit", "5", "--json"))
    assert inbound and all(r["who"] in ("CLIENT1", "CLIENT2", "VENUE-A", "VENUE-B") for r in inbound)


def test_audit_verify_intact_then_reports_a_tampered_row(cfg: Path, cstack: Stack) -> None:
    out = ok(fixoms(cfg, "audit", "verify"))
    assert out.startswith("OMS1: ") and "rows, chain intact" in out
    n = int(out.split()[1])
    assert n > 50
    data = as_json(fixoms(cfg, "audit", "verify", "--json"))
    assert data[0]["intact"] and data[0]["rows"] >= n
    # someone edits a fill's price in the trail
    db = make_engine(cstack.db_url)
    target = as_json(fixoms(cfg, "audit", "list", "--kind", "outbound", "--limit", "1", "--json"))[0]
    doctored = dict(target["summary"])
    doctored["text"] = "nothing to see"
    with db.begin() as conn:
        conn.execute(update(audit_t).where(audit_t.c.instance == "OMS1").where(audit_t.c.seq == target["seq"])
                     .values(summary=json.dumps(doctored, sort_keys=True, separators=(",", ":"))))
    p = run_fixoms(cfg, "audit", "verify")
    assert p.returncode == 1
    assert p.stderr.startswith(f"error: OMS1: chain broken at row {target['seq']}: content does not match its hash")
    assert p.stderr.count("\n") == 1
    res = fixoms(cfg, "audit", "verify", "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)[0]["broken"]["seq"] == target["seq"]


def test_report_eod_writes_csvs_and_prints_a_summary(cfg: Path, cstack: Stack, client: FixClient,
                                                      tmp_path: Path) -> None:
    import csv

    cl = client.new_order("AAPL", "1", 100, ord_type="1")
    client.wait_report(cl, status="2")
    out = as_json(fixoms(cfg, "report", "eod", "--out", str(tmp_path / "eod"), "--json"))
    acc = out["accounts"]["ACC-1"]
    assert acc["fills"] >= 1 and acc["orders"] >= 1
    with open(out["files"]["fills"]) as fh:
        fills = list(csv.DictReader(fh))
    assert any(f["symbol"] == "AAPL" and f["qty"] == "100" for f in fills)
    table = ok(fixoms(cfg, "report", "eod", "--out", str(tmp_path / "eod")))
    assert "end of day" in table and "ACC-1" in table


def test_venues_list(cfg: Path, cstack: Stack, client: FixClient) -> None:
    before = {r["venue"]: r for r in as_json(fixoms(cfg, "venues", "list", "--json"))}
    cl = client.new_order("AAPL", "1", 37, ord_type="1")  # not the same content as another test's order
    client.wait_report(cl, status="2")
    rows = {r["venue"]: r for r in as_json(fixoms(cfg, "venues", "list", "--json"))}
    assert set(rows) == {"INTERNAL", "VENUE-A", "VENUE-B"}
    assert rows["VENUE-A"]["status"] == "up" and rows["VENUE-A"]["taker_fee"] == "0.0030"
    # today's fills come from the journal (finished orders count, also after a restart)
    assert rows["VENUE-A"]["fills_today"] > before["VENUE-A"]["fills_today"]
    assert rows["VENUE-A"]["in_doubt"] == 0
    # measured: the market order's child went to VENUE-A and was acknowledged (a real round trip, in ms)
    assert 0 < float(rows["VENUE-A"]["ack_ms"]) < 10_000
    assert "ack_ms" in ok(fixoms(cfg, "venues", "list"))
