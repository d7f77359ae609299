"""The journal's PostgreSQL goes away mid-flow and comes back.

The engine runs as a `fixoms run` subprocess on a database of its own (created here, dropped at the
end: the shared server and its `test` database are never touched). The outage is real: a superuser
connection to the `postgres` database sets `ALLOW_CONNECTIONS false` on ours and terminates the
engine's backends, and later allows connections again.

The scenario runs once (module fixture) and records what the client, the venue and the journal saw;
each test checks one promise:

- fail closed: every new order sent during the outage is refused, with a reason that says why;
- nothing acknowledged before the outage is lost;
- the engine recovers by itself: new orders are accepted again once the database is back;
- fills the venue sent during the outage reach the journal and the client (without a restart);
- a cancel sent during the outage is carried out when the database is back;
- a ClOrdID refused during the outage can be used again afterwards;
- after a restart the journal agrees with the venue (reconciliation).

How the engine keeps them: after a failed commit its memory holds the batch's changes but the journal
does not, so it is "stale" - it refuses new orders and holds everything else until it has reloaded its
state from the journal, then decides the held commands again on that state (oms.engine._commit_failed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from sqlalchemy import select

from fix_engine import codec
from fix_engine.client import FixClient
from oms.enums import Side
from oms.schema import children_t, cl_ord_ids_t, make_engine, orders_t
from tests.conftest import _PG_SKIP, logon_fields
from tests.fault.test_fuzz import EngineProcess

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(bool(_PG_SKIP), reason=_PG_SKIP or "")]

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NEW, FILLED, CANCELED, REJECTED = "0", "2", "4", "8"
RECOVERY_TIMEOUT = 30.0  # seconds the engine may take to accept orders again (never reached when healthy)


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def cut(db: str) -> None:
    """Refuse new connections to `db`, then end the ones that exist (the engine's pool)."""
    admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
    admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' "
          "AND pid <> pg_backend_pid()")


def restore(db: str) -> None:
    admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")


@dataclass
class Seen:
    """What the scenario observed, for the tests below."""

    acked_before: list[str] = field(default_factory=list)
    outage_answers: dict[str, dict[int, str]] = field(default_factory=dict)
    cancel_id: str = ""
    cancel_target: str = ""
    cancel_answers: list[dict[int, str]] = field(default_factory=list)
    accepted_after: str | None = None
    attempts_after: int = 0
    reused_answer: dict[int, str] = field(default_factory=dict)
    # per ClOrdID: (venue CumQty, journal CumQty, the client's fills), before and after a restart
    before_restart: dict[str, tuple[Decimal, Decimal, Decimal]] = field(default_factory=dict)
    after_restart: dict[str, tuple[Decimal, Decimal, Decimal]] = field(default_factory=dict)
    journal_status_before_restart: dict[str, str] = field(default_factory=dict)
    engine_log: str = ""


def reports(client: FixClient, cl: str) -> list[dict[int, str]]:
    client.drain()
    return [m for m in client.received if m.get(codec.MSG_TYPE) in (codec.EXECUTION_REPORT, codec.CANCEL_REJECT)
            and (m.get(codec.CL_ORD_ID) == cl or m.get(codec.ORIG_CL_ORD_ID) == cl)]


def compare(engine: EngineProcess, client: FixClient, cls: list[str]) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """Per order: what the venue filled, what the journal holds, what the client was told."""
    venue = next(s.app for s in engine.sims if s.app.name == "VENUE-B")
    db = make_engine(engine.db_url)
    try:
        with db.connect() as conn:
            orders = {r.cl_ord_id: r for r in conn.execute(select(orders_t))}
            children = list(conn.execute(select(children_t)))
    finally:
        db.dispose()
    out: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    client.drain()
    for cl in cls:
        row = orders[cl]
        venue_cum = Decimal(0)
        for ch in children:
            if ch.order_id == row.order_id:
                vid = venue.by_cl_ord_id.get(("FIXOMS", ch.child_id))
                venue_cum += venue.orders[vid].cum if vid is not None else 0
        fills = {m[codec.EXEC_ID]: Decimal(m[codec.LAST_QTY]) for m in client.received
                 if m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT and m.get(codec.CL_ORD_ID) == cl
                 and m.get(codec.EXEC_TYPE) == "F"}
        out[cl] = (venue_cum, row.cum_qty, sum(fills.values(), Decimal(0)))
    return out


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    tmp = tmp_path_factory.mktemp("db-outage")
    db = f"fixoms_outage_{os.getpid()}"
    admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin(f"CREATE DATABASE {db}")
    engine = EngineProcess(tmp, f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
    client: FixClient | None = None
    result = Seen()
    try:
        engine.start()
        client = FixClient("CLIENT1", engine.port, tmp, codec.FIX44, logon_fields=logon_fields("CLIENT1")).start(wait=20)
        venue = next(s.app for s in engine.sims if s.app.name == "VENUE-B")
        # before: four bids the venue's other participants will sell into, one bid nobody will hit
        for i in range(4):
            cl = client.new_order("IBM", "1", 100 + i, price="150.00")
            client.wait_report(cl, exec_type=NEW, timeout=20)
            result.acked_before.append(cl)
        result.cancel_target = client.new_order("IBM", "1", 50, price="149.00")
        client.wait_report(result.cancel_target, exec_type=NEW, timeout=20)
        result.acked_before.append(result.cancel_target)

        cut(db)
        try:
            for _ in range(12):  # 360 shares sold into our 150.00 bids while the journal is gone
                venue.house_order("IBM", Side.SELL, Decimal("150.00"), 30)
            outage = [client.new_order("IBM", "1", 10 + i, price="149.50") for i in range(5)]
            for cl in outage:
                try:
                    result.outage_answers[cl] = client.wait_report(cl, timeout=20)
                except TimeoutError:
                    result.outage_answers[cl] = {}
            result.cancel_id = client.cancel(result.cancel_target, "IBM", "1", 50)
            time.sleep(1.0)  # the engine retries what it could not journal; let it try a few times
        finally:
            restore(db)

        # after: the engine should take orders again by itself
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline and result.accepted_after is None:
            result.attempts_after += 1
            cl = client.new_order("IBM", "1", 20 + result.attempts_after, price="149.60")
            try:
                answer = client.wait_report(cl, timeout=5)
            except TimeoutError:
                continue
            if answer.get(codec.EXEC_TYPE) == NEW:
                result.accepted_after = cl
            else:
                time.sleep(0.5)
        refused = next(iter(result.outage_answers))
        again = client.new_order("IBM", "1", 10, price="149.50", cl_ord_id=refused)
        try:
            result.reused_answer = client.wait_for(
                lambda m: m.get(codec.CL_ORD_ID) == again and m not in result.outage_answers.values()
                and m.get(codec.EXEC_TYPE) in (NEW, REJECTED), timeout=10)
        except TimeoutError:
            result.reused_answer = {}
        time.sleep(1.0)
        for cl in result.acked_before:
            client.status(cl, "IBM", "1")
        client.drain(1.0)
        result.cancel_answers = [m for m in reports(client, result.cancel_target) if m.get(codec.CL_ORD_ID)
                                 == result.cancel_id]
        filled = result.acked_before[:4]
        result.before_restart = compare(engine, client, filled)
        dbe = make_engine(engine.db_url)
        try:
            with dbe.connect() as conn:
                # by every ClOrdID an order had (a canceled order's row carries the cancel's ClOrdID)
                result.journal_status_before_restart = {
                    r.cl_ord_id: r.status for r in conn.execute(
                        select(cl_ord_ids_t.c.cl_ord_id, orders_t.c.status)
                        .join(orders_t, orders_t.c.order_id == cl_ord_ids_t.c.order_id))}
        finally:
            dbe.dispose()

        # a restart reconciles with the venue
        assert engine.stop(), "the engine did not stop on SIGTERM after the outage"
        engine.respawn()
        assert client.app.logon_event.wait(20), "the client did not log on again"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            result.after_restart = compare(engine, client, filled)
            if all(v == j for v, j, _ in result.after_restart.values()):
                break
            time.sleep(0.3)
        result.engine_log = engine.log()
        yield result
    finally:
        if client is not None:
            client.stop(force=True)
        engine.close()
        restore(db)
        admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_new_orders_are_refused_with_a_clear_reason_during_the_outage(seen: Seen) -> None:
    assert seen.outage_answers and all(seen.outage_answers.values()), "an order got no answer during the outage"
    for cl, answer in seen.outage_answers.items():
        assert answer[codec.ORD_STATUS] == REJECTED, (cl, answer)
        assert "journal unavailable" in answer.get(codec.TEXT, ""), answer


def test_nothing_acknowledged_before_the_outage_is_lost(seen: Seen) -> None:
    assert set(seen.acked_before) <= set(seen.journal_status_before_restart)
    # and no refused order became an order
    assert not set(seen.outage_answers) - {seen.reused_answer.get(codec.CL_ORD_ID)} \
        & set(seen.journal_status_before_restart)


def test_the_engine_takes_orders_again_when_the_database_returns(seen: Seen) -> None:
    assert seen.accepted_after is not None, f"no order accepted in {seen.attempts_after} attempts after the restore"


def test_fills_during_the_outage_reach_the_journal_and_the_client(seen: Seen) -> None:
    # the venue filled what its other participants sold into our bids while the journal was gone
    assert sum(v for v, _, _ in seen.before_restart.values()) == 360, seen.before_restart
    for cl, (venue, journal, client) in seen.before_restart.items():
        assert venue == journal == client, f"{cl}: venue {venue}, journal {journal}, client {client}"


def test_a_cancel_sent_during_the_outage_is_carried_out(seen: Seen) -> None:
    statuses = [m.get(codec.ORD_STATUS) for m in seen.cancel_answers]
    assert CANCELED in statuses, [(m.get(codec.MSG_TYPE), m.get(codec.ORD_STATUS), m.get(codec.TEXT))
                                  for m in seen.cancel_answers]
    assert seen.journal_status_before_restart[seen.cancel_target] == CANCELED


def test_a_clordid_refused_during_the_outage_can_be_sent_again(seen: Seen) -> None:
    assert seen.reused_answer.get(codec.EXEC_TYPE) == NEW, seen.reused_answer.get(codec.TEXT)


def test_after_a_restart_the_journal_agrees_with_the_venue(seen: Seen) -> None:
    assert seen.after_restart
    for cl, (venue, journal, _client) in seen.after_restart.items():
        assert venue == journal, f"{cl}: venue {venue}, journal {journal}"
