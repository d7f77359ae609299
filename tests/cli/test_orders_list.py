"""`fixoms orders list` on a journal bigger than its default limit (issue 14): the newest 100 matching
orders by default with a footer naming how many match, --limit N, --all, and --json honouring the same;
the database does the LIMIT and the COUNT. Also the other operator reads that moved into oms.queries
(orders show, the cancel-all count, report tca).

The journal (SQLite, and PostgreSQL in a database of its own) is filled with the engine's row shapes
(oms.rows.order_row of Orders built from OrderAccepted); no engine runs. Commands run in process through
click's CliRunner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import event, insert

from fixoms.cli import cli
from oms import events as ev
from oms.enums import OrdType, Side, TimeInForce
from oms.model import Order
from oms.queries import count_orders, list_orders, orders_page
from oms.rows import child_row, order_row
from oms.schema import children_t, create_schema, events_t, make_engine, orders_t
from sor.tca import ParentTCA

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ORDERS = 300  # OMS1-1 .. OMS1-300; every 6th is filled, the other 250 are working
SYMBOLS = {"AAPL": ("VENUE-A", Decimal("190.00")), "MSFT": ("VENUE-A", Decimal("410.00")),
           "IBM": ("VENUE-B", Decimal("150.00")), "TSLA": ("VENUE-B", Decimal("250.00"))}
DAY = datetime(2030, 1, 3, 14, 30, tzinfo=UTC)


def symbol_of(k: int) -> str:
    return list(SYMBOLS)[k % 4]


def is_open(k: int) -> bool:
    return k % 6 != 0


OPEN_IDS = [f"OMS1-{k}" for k in range(1, ORDERS + 1) if is_open(k)]
ALL_IDS = [f"OMS1-{k}" for k in range(1, ORDERS + 1)]
assert len(OPEN_IDS) == 250


# What clients and venues send is shown as sent, never read as rich markup or emoji codes.
CL_ORD_IDS = {299: "[/x]C299"}
TEXTS = {299: "[risk] held [/b] :smile:"}


def build_order(k: int) -> Order:
    """Order k: accepted, routed and acknowledged; filled if finished, a third of the working ones
    partially filled (half)."""
    symbol = symbol_of(k)
    venue, ref = SYMBOLS[symbol]
    qty, oid = Decimal(100 + k), f"OMS1-{k}"
    accepted = ev.OrderAccepted(oid, k, "CLIENT1", f"ACC-{1 + k % 2}", CL_ORD_IDS.get(k, f"C{k}"), symbol,
                                Side.BUY if k % 2 else Side.SELL, OrdType.LIMIT, TimeInForce.DAY, qty, ref, None,
                                DAY + timedelta(seconds=k), arrival_mid=ref)
    order = Order.from_accepted(accepted)
    child_id = order.next_child_id()
    order.apply(ev.ChildRouted(oid, child_id, venue, qty, ref, OrdType.LIMIT, TimeInForce.DAY))
    order.apply(ev.ChildAcked(oid, child_id, f"{venue}-{k}"))
    fill = qty if not is_open(k) else (qty // 2 if k % 3 == 0 else None)
    if fill:
        order.apply(ev.ChildFilled(oid, child_id, venue, f"X{k}", f"{oid}-{1 + order.report_seq}", fill, ref,
                                   DAY + timedelta(seconds=k, milliseconds=5)))
    order.text = TEXTS.get(k, "")
    return order


# OMS1-6 (IBM, sold and filled at VENUE-B): the figures the engine journals when an order ends.
TCA = ParentTCA("OMS1-6", "IBM", Side.SELL, Decimal(106), Decimal(106), Decimal("150.00"), Decimal("150.00"),
                Decimal(0), Decimal(0), Decimal(1), Decimal("0.265"), Decimal(0), Decimal("0.265"), ("VENUE-B",),
                timedelta(milliseconds=5)).as_dict()


def fill_journal(url: str) -> None:
    engine = make_engine(url)
    create_schema(engine)
    orders = [build_order(k) for k in range(1, ORDERS + 1)]
    with engine.begin() as conn:
        conn.execute(insert(orders_t), [order_row(o, "OMS1") for o in orders])
        conn.execute(insert(children_t), [child_row(c) for o in orders for c in o.children.values()])
        conn.execute(insert(events_t), [{"instance": "OMS1", "ts": DAY, "kind": "TcaRecorded", "order_id": "OMS1-6",
                                         "payload": ev.to_payload(ev.TcaRecorded("OMS1-6", TCA))}])
    engine.dispose()


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@dataclass
class Journal:
    url: str
    config: Path


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def journal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    tmp = tmp_path_factory.mktemp(f"orders-list-{request.param}")
    name = f"fixoms_test_orders_list_{os.getpid()}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'journal.db'}"
    else:
        try:
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            _pg_admin(f"CREATE DATABASE {name}")
        except Exception as exc:
            pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {str(exc).splitlines()[0]}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        fill_journal(url)
        config = tmp / "fixoms.toml"
        config.write_text(f'[engine]\ninstance = "OMS1"\nvar_dir = "{tmp / "var"}"\n\n[database]\nurl = "{url}"\n')
        yield Journal(url, config)
    finally:
        if request.param == "postgresql":
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fixoms(j: Journal, *args: str) -> Result:
    """`fixoms --config CFG ARGS...` in process."""
    return CliRunner().invoke(cli, ["--config", str(j.config), *args], env={"COLUMNS": "250"})


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def ids(result: Result) -> list[str]:
    return [r["order_id"] for r in json.loads(ok(result).stdout)]


def table_ids(text: str) -> list[str]:
    """The order ids of a printed blotter table, top to bottom."""
    return [word for line in text.splitlines() for word in line.replace("│", " ").split()[:1]
            if word.startswith("OMS1-")]


# --- the default limit, --limit, --all ------------------------------------------------------------------
def test_open_orders_show_the_newest_100_with_a_footer(journal: Journal) -> None:
    res = ok(fixoms(journal, "orders", "list", "--open"))
    assert table_ids(res.stdout) == OPEN_IDS[-100:]  # the newest 100, oldest first
    assert "100 of 250 orders" in res.stdout
    assert "showing the newest 100 of 250 orders; --all for every order (or --limit N)" in res.stdout


def test_json_honours_the_default_limit_and_notes_the_cut_on_stderr(journal: Journal) -> None:
    res = fixoms(journal, "orders", "list", "--open", "--json")
    assert ids(res) == OPEN_IDS[-100:]  # stdout: just the JSON array
    assert "showing the newest 100 of 250 orders" in res.stderr


def test_limit_n(journal: Journal) -> None:
    res = fixoms(journal, "orders", "list", "--open", "--limit", "7", "--json")
    assert ids(res) == OPEN_IDS[-7:]
    assert "showing the newest 7 of 250 orders" in res.stderr
    res = ok(fixoms(journal, "orders", "list", "--limit", "3"))
    assert table_ids(res.stdout) == ALL_IDS[-3:]
    assert "showing the newest 3 of 300 orders" in res.stdout


def test_all_shows_every_order_and_no_footer(journal: Journal) -> None:
    res = fixoms(journal, "orders", "list", "--open", "--all", "--json")
    assert ids(res) == OPEN_IDS
    assert res.stderr == ""
    res = ok(fixoms(journal, "orders", "list", "--all"))
    assert table_ids(res.stdout) == ALL_IDS
    assert "300 orders" in res.stdout and "showing" not in res.stdout
    # a limit above the count is no cut either
    res = ok(fixoms(journal, "orders", "list", "--open", "--limit", "250"))
    assert table_ids(res.stdout) == OPEN_IDS and "showing" not in res.stdout and "250 orders" in res.stdout


def test_filters_apply_before_the_limit_and_to_the_count(journal: Journal) -> None:
    ibm_open = [f"OMS1-{k}" for k in range(1, ORDERS + 1) if is_open(k) and symbol_of(k) == "IBM"]
    res = fixoms(journal, "orders", "list", "--open", "--symbol", "IBM", "--limit", "10", "--json")
    assert ids(res) == ibm_open[-10:]
    assert f"showing the newest 10 of {len(ibm_open)} orders" in res.stderr
    # fewer matching than the limit: all of them, no footer
    res = fixoms(journal, "orders", "list", "--open", "--symbol", "IBM", "--account", "ACC-1", "--json")
    assert ids(res) == [i for i in ibm_open if int(i.split("-")[1]) % 2 == 0] and res.stderr == ""
    venue_b = [f"OMS1-{k}" for k in range(1, ORDERS + 1) if is_open(k) and SYMBOLS[symbol_of(k)][0] == "VENUE-B"]
    res = fixoms(journal, "orders", "list", "--open", "--venue", "VENUE-B", "--limit", "5", "--json")
    assert ids(res) == venue_b[-5:] and f"of {len(venue_b)} orders" in res.stderr


def test_limit_and_all_are_checked(journal: Journal) -> None:
    res = fixoms(journal, "orders", "list", "--limit", "5", "--all")
    assert res.exit_code == 2 and "--limit and --all exclude each other" in res.output
    for bad in ("0", "-1", "x"):
        res = fixoms(journal, "orders", "list", "--limit", bad)
        assert res.exit_code == 2 and "--limit" in res.output


def test_watch_keeps_the_limit_and_the_footer(journal: Journal) -> None:
    res = ok(fixoms(journal, "orders", "list", "--open", "--limit", "3", "--watch", "--interval", "0.1",
                    "--count", "2", "--json"))
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all([r["order_id"] for r in json.loads(line)] == OPEN_IDS[-3:] for line in lines)
    assert res.stderr.count("showing the newest 3 of 250 orders") == 1  # said once, not every redraw
    res = ok(fixoms(journal, "orders", "list", "--open", "--watch", "--count", "2", "--interval", "0.1"))
    assert table_ids(res.stdout) == OPEN_IDS[-100:] * 2
    assert res.stdout.count("showing the newest 100 of 250 orders") == 2 and "100 of 250 orders at " in res.stdout


def test_json_rows_are_the_blotter_rows(journal: Journal) -> None:
    (row,) = [r for r in json.loads(ok(fixoms(journal, "orders", "list", "--open", "--json")).stdout)
              if r["order_id"] == "OMS1-297"]
    assert row == {
        "order_id": "OMS1-297", "session": "CLIENT1", "account": "ACC-2", "cl_ord_id": "C297", "symbol": "MSFT",
        "side": "BUY", "ord_type": "2", "order_qty": "397", "price": "410.00", "status": "PARTIALLY_FILLED",
        "cum_qty": "198", "leaves_qty": "199", "avg_px": "410.0000", "text": "",
        "created_at": (DAY + timedelta(seconds=297)).isoformat(),
    }


def test_the_database_does_the_limit_and_the_count(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut is a LIMIT in the SQL (not Python slicing a full read), the footer a COUNT."""
    import fixoms.cli as cli_module

    statements: list[str] = []
    engine = make_engine(journal.url)
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql.lower()))
    monkeypatch.setattr(cli_module, "journal_db", lambda _obj: engine)
    try:
        ok(fixoms(journal, "orders", "list", "--open"))
        reads = [s for s in statements if "from orders" in s]
        assert any("limit" in s and "count(" not in s for s in reads), reads
        assert any("count(" in s for s in reads), reads
        statements.clear()
        ok(fixoms(journal, "orders", "list", "--open", "--all"))
        reads = [s for s in statements if "from orders" in s]
        assert reads and not any("limit" in s or "count(" in s for s in reads), reads
    finally:
        engine.dispose()


def test_client_and_venue_text_is_shown_as_sent(journal: Journal) -> None:
    res = ok(fixoms(journal, "orders", "list", "--open", "--limit", "2"))
    line = next(line for line in res.stdout.splitlines() if "OMS1-299" in line)
    assert "[/x]C299" in line and "[risk] held [/b] :smile:" in line


# --- the queries behind it (oms.queries) -----------------------------------------------------------------
def test_queries_page_and_count(journal: Journal) -> None:
    engine = make_engine(journal.url)
    try:
        page = orders_page(engine, open_only=True, limit=100)
        assert [o.order_id for o in page.rows] == OPEN_IDS[-100:] and page.total == 250 and not page.complete
        page = orders_page(engine, open_only=True)
        assert len(page.rows) == page.total == 250 and page.complete
        assert [o.order_id for o in list_orders(engine, limit=2)] == ALL_IDS[-2:]
        assert count_orders(engine) == 300 and count_orders(engine, open_only=True) == 250
        assert count_orders(engine, open_only=True, venue="VENUE-A", account="ACC-1") == sum(
            1 for k in range(1, ORDERS + 1) if is_open(k) and k % 2 == 0 and symbol_of(k) in ("AAPL", "MSFT"))
        with pytest.raises(ValueError):
            orders_page(engine, limit=0)
    finally:
        engine.dispose()


def test_orders_show_and_report_tca_read_through_oms_queries(journal: Journal) -> None:
    shown: dict[str, Any] = json.loads(ok(fixoms(journal, "orders", "show", "OMS1-6", "--json")).stdout)
    assert shown["status"] == "FILLED" and shown["leaves_qty"] == "0"
    assert [(c["child_id"], c["venue"], c["status"], c["cum_qty"]) for c in shown["children"]] == [
        ("OMS1-6.1", "VENUE-B", "FILLED", "106")]
    assert [e["kind"] for e in shown["events"]] == ["TcaRecorded"]
    assert fixoms(journal, "orders", "show", "NOPE").exit_code == 1
    tca = json.loads(ok(fixoms(journal, "report", "tca", "--json")).stdout)
    assert [o["order_id"] for o in tca["orders"]] == ["OMS1-6"]
