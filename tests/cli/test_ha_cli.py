"""`fixoms run --standby`, [ha] and `fixoms ha status` on SQLite: refused with one line and a non-zero exit
(a standby needs the primary's journal on a server it can reach)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from fix_engine.settings import quickfix_pg_store
from oms.journal import Journal
from oms.lease import Lease, members, report_member
from oms.schema import audit_t, make_engine
from tests.conftest import _PG_SKIP, PG_URL, ROOT, reset_pg


def _fixoms(tmp: Path, *args: str, toml: str = "") -> subprocess.CompletedProcess[str]:
    config = tmp / "fixoms.toml"
    config.write_text(f'[engine]\nvar_dir = "var"\n[database]\nurl = "sqlite:///{tmp}/j.db"\n{toml}')
    return subprocess.run([sys.executable, "-m", "fixoms.cli", "--config", str(config), *args], cwd=tmp,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_run_standby_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", "--standby")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: high availability") and "PostgreSQL" in lines[0], done.stderr


def test_ha_enabled_in_the_config_on_sqlite_is_refused(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", toml="[ha]\nenabled = true\n")
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error: high availability") and len(done.stderr.strip().splitlines()) == 1


def test_ha_status_on_sqlite_is_refused(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "ha", "status")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: high availability needs the journal on PostgreSQL: sqlite has no lease to show"]


def test_a_lease_renewed_too_rarely_is_a_config_error(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", "--standby", toml="[ha]\nlease_s = 1\nrenew_s = 0.8\n")
    assert done.returncode != 0
    assert "renew_s (0.8) must be at most half of lease_s (1)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_ha_status_shows_the_lease_and_the_members_lag_as_a_table_and_json(tmp_path: Path) -> None:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    reset_pg()
    engine = make_engine(PG_URL)
    Journal(engine, "OMS1").create_schema()
    lease = Lease(engine, "OMS1", "host-a:1:aa", lease_s=30)
    assert lease.try_acquire()
    report_member(engine, "OMS1", "host-a:1:aa", "primary", 12, 0, 0, 0.0)
    report_member(engine, "OMS1", "host-b:2:bb", "standby", 10, 2, 7, 0.25)
    config = tmp_path / "fixoms.toml"
    config.write_text(f'[engine]\nvar_dir = "var"\n[database]\nurl = "{PG_URL}"\n')

    def fixoms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fixoms.cli", "--config", str(config), *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})

    done = fixoms("ha", "status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["holder"] == "host-a:1:aa" and data["epoch"] == 1 and data["live"]
    assert 0 < data["remaining_s"] <= 30
    standby = next(m for m in data["members"] if m["role"] == "standby")
    assert (standby["holder"], standby["seen_batch"], standby["lag_batches"], standby["lag_events"],
            standby["lag_s"]) == ("host-b:2:bb", 10, 2, 7, 0.25)
    table = fixoms("ha", "status")
    assert table.returncode == 0, table.stderr
    first = table.stdout.splitlines()[0]
    assert first.startswith("OMS1: primary host-a:1:aa, epoch 1, lease live"), first
    assert "host-b:2:bb" in table.stdout and "standby" in table.stdout
    # audited, with the caller's OS user
    with engine.connect() as conn:
        kinds = [json.loads(r.summary).get("action") for r in conn.execute(select(audit_t))]
    assert kinds.count("ha.status") == 2
    # released: nobody is primary
    lease.release()
    released = fixoms("ha", "status")
    assert released.stdout.startswith("OMS1: no primary (lease released, epoch 1)"), released.stdout
    engine.dispose()


class Standby:
    """A standby (HANode, not started) following a journal another engine appends to, on PostgreSQL."""

    def __init__(self, tmp_path: Path) -> None:
        from fixoms import config as config_mod
        from fixoms.ha import HANode
        from oms import events as ev

        reset_pg()
        self.engine = make_engine(PG_URL)
        Journal(self.engine, "OMS1").create_schema()
        self.primary = Journal(self.engine, "OMS1", projector="off")
        # a record with events and no order: what the primary appends here
        self.change = ev.RiskLimitChanged("ACC-1", "max_order_qty", "1", "2", "tests", datetime.now(UTC))
        self.node = HANode(config_mod.from_dict({"database": {"url": PG_URL}}, tmp_path), holder="host-b:2:bb")

    def append(self, batches: int, events: int = 1) -> None:
        for _ in range(batches):
            self.primary.append([self.change] * events, [])

    def close(self) -> None:
        self.node.close()
        self.primary.close(sent=False)
        self.engine.dispose()


@pytest.fixture
def standby(tmp_path: Path) -> Iterator[Standby]:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    if not quickfix_pg_store():
        pytest.skip("QuickFIX was built without its PostgreSQL store: HA refuses to start")
    s = Standby(tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.postgres
def test_a_standby_measures_its_lag_in_batches_events_and_seconds(standby: Standby) -> None:
    """HANode.follow against a journal another engine appends to; the lag is in ha_members and in the
    standby's Prometheus metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    node = standby.node
    standby.append(3, events=2)
    assert node.follow() == 0
    # what that look found behind it: 3 batches of 2 events, the oldest just appended
    assert (node.seen_batch, node.lag_batches, node.lag_events) == (3, 3, 6)
    assert 0 <= node.lag_s < 60
    with standby.engine.connect() as conn:
        (row,) = members(conn, "OMS1")
    assert (row.holder, row.role, row.seen_batch, row.lag_batches, row.lag_events) == (
        "host-b:2:bb", "standby", 3, 3, 6)
    assert node.follow() == 0 and (node.lag_batches, node.lag_events, node.lag_s) == (0, 0, 0.0)
    # more than it reads in one look: behind by what is left
    from fixoms import ha

    ha.FOLLOW_BATCH, saved = 2, ha.FOLLOW_BATCH
    try:
        standby.append(5)
        assert node.follow() == 3  # read 2 of the 5: 3 left for the next look
    finally:
        ha.FOLLOW_BATCH = saved
    assert (node.seen_batch, node.lag_batches, node.lag_events) == (5, 5, 2)
    # and it kept the order state from what it read (oms.warm): here the risk changes of 5 batches
    assert node.warm is not None and node.warm.seen == 5 and len(node.warm.risk_changes) == 8
    registry = CollectorRegistry()
    registry.register(node.metrics)
    text = generate_latest(registry).decode()
    assert "fixoms_ha_standby_lag_batches 5.0" in text and "fixoms_ha_primary 0.0" in text
    assert "fixoms_ha_standby_ports_held 0.0" in text  # no client port bound by this node
    assert "fixoms_ha_standby_state_warm 1.0" in text and "fixoms_ha_standby_warm_orders 0.0" in text
    from fixoms.held_ports import HeldPorts
    from fixoms.netutil import free_port

    node.held = HeldPorts([free_port()], grace_s=1.0)
    node.held.hold(True)  # the primary's lease is late: client connections wait for the takeover
    text = generate_latest(registry).decode()
    assert "fixoms_ha_standby_ports_held 1.0" in text and "fixoms_ha_standby_connections_refused 0.0" in text


@pytest.mark.postgres
def test_a_standby_whose_unread_log_rows_were_trimmed_reads_its_order_state_again(
        standby: Standby, caplog: pytest.LogCaptureFixture) -> None:
    """The primary deletes log rows well behind its projection; a standby that had not read them yet cannot
    keep its order state from the log: it reads it again from the tables, then follows from there."""
    from sqlalchemy import delete

    from oms.schema import journal_log_t

    node = standby.node
    standby.append(1)
    node.follow()
    assert node.warm is not None and node.warm.seen == 1
    standby.append(4)
    standby.primary.sync()  # the tables hold batch 5
    with standby.engine.begin() as conn:
        conn.execute(delete(journal_log_t).where(journal_log_t.c.batch.in_([2, 3])))
    with caplog.at_level(logging.WARNING, logger="fixoms.ha"):
        node.follow()  # finds 4 where it expected 2: lets the state go
        assert node.warm is None
        node.follow()  # reads it again, at the tables' mark
    assert "log batches 2..3 gone before they were read" in caplog.text
    assert node.warm is not None and node.warm.seen == 5 and len(node.warm.risk_changes) == 5
    standby.append(1)
    node.follow()
    assert node.warm.seen == 6 and len(node.warm.risk_changes) == 6


def test_step_down_of_an_engine_without_ha_is_refused_in_one_line(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from fixoms.admin import AdminServer

    audited: list[tuple[str, str, dict[str, object]]] = []
    app = SimpleNamespace(ha=None, journal=SimpleNamespace(append_audit=lambda *a: audited.append(a) or 1))
    answer = AdminServer(app, tmp_path / "admin.sock").dispatch("ops", "ha.step_down", {})  # type: ignore[arg-type]
    assert answer == {"ok": False, "error": "this engine does not run in HA mode (run --standby, or [ha] enabled): "
                                            "no standby to step down to"}
    assert audited and audited[0][2]["action"] == "ha.step_down" and audited[0][2]["ok"] is False


@pytest.mark.postgres
def test_step_down_is_refused_while_no_standby_follows_unless_forced(tmp_path: Path) -> None:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    if not quickfix_pg_store():
        pytest.skip("QuickFIX was built without its PostgreSQL store: HA refuses to start")
    from fixoms import config as config_mod
    from fixoms.ha import HANode, StepDownRefused

    reset_pg()
    engine = make_engine(PG_URL)
    Journal(engine, "OMS1").create_schema()
    node = HANode(config_mod.from_dict({"database": {"url": PG_URL}}, tmp_path), holder="host-a:1:aa")
    try:
        with pytest.raises(StepDownRefused, match="not the primary"):
            node.step_down()
        assert node.lease.try_acquire()
        node.role = "primary"
        with pytest.raises(StepDownRefused, match="no standby is following"):
            node.step_down()
        assert not node.step_down_requested.is_set()
        # a standby that reported long ago is not following
        report_member(engine, "OMS1", "host-b:2:bb", "standby", 0, 0, 0, 0.0)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE ha_members SET reported = reported - interval '1 hour'")
        with pytest.raises(StepDownRefused):
            node.step_down()
        report_member(engine, "OMS1", "host-b:2:bb", "standby", 0, 0, 0, 0.0)
        assert node.step_down() == {"holder": "host-a:1:aa", "epoch": 1}
        assert node.step_down_requested.is_set() and node.stop_event.is_set()
        node.step_down_requested.clear()
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ha_members")
        assert node.step_down(force=True)["epoch"] == 1
    finally:
        node.close()
        engine.dispose()


def test_an_admin_answer_under_way_is_sent_before_the_admin_socket_stops(tmp_path: Path) -> None:
    # `ha step-down` says yes and the engine stops at once (the admin socket with it): the operator must
    # still get that yes. The action here stops the server from another thread, as the HA node's thread
    # does, and lets the audit record take a moment before the answer is written.
    import threading
    import time
    from types import SimpleNamespace

    from fixoms.admin import AdminClient, AdminServer

    stopping: list[threading.Thread] = []

    def slow_audit(*_: object) -> int:
        time.sleep(0.3)  # the stop below starts meanwhile
        return 1

    app = SimpleNamespace(ha=None, journal=SimpleNamespace(append_audit=slow_audit))
    server = AdminServer(app, tmp_path / "admin.sock")  # type: ignore[arg-type]

    def step_down(who: str, args: dict[str, object]) -> tuple[object, None]:
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopping.append(stopper)
        return {"epoch": 1}, None

    server._actions["ha.step_down"] = step_down
    server.start()
    assert AdminClient(tmp_path / "admin.sock", timeout=10).call("ha.step_down") == {"epoch": 1}
    stopping[0].join(10)
    assert not stopping[0].is_alive() and not (tmp_path / "admin.sock").exists()
