"""The audit trail: hash chain (oms.audit), its rows in the journal's batch transaction, and
`fixoms audit verify` finding a tampered, deleted or re-linked row."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from fixoms.cli import cli
from oms import audit
from oms import commands as c
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.journal import Journal
from oms.model import Order
from oms.queries import iter_audit
from oms.reports import ExecutionReport, VenueNewOrder
from oms.schema import audit_t

D = Decimal
NOW = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def new_order(cl: str = "C1") -> c.NewOrder:
    return c.NewOrder("CLIENT1", cl, "ACC-1", "IBM", Side.BUY, OrdType.LIMIT, D(100), D("150.00"))


def ack(order_id: str = "OMS1-1") -> ExecutionReport:
    return ExecutionReport("CLIENT1", order_id, "C1", None, f"{order_id}-1", ExecType.NEW, OrdStatus.NEW, "ACC-1",
                           "IBM", "1", OrdType.LIMIT, TimeInForce.DAY, D(100), D("150.00"), D(0), D(0), D(100), D(0),
                           D(0))


def child(order_id: str = "OMS1-1") -> VenueNewOrder:
    return VenueNewOrder("VENUE-B", f"{order_id}.1", "IBM", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, D(100),
                         D("150.00"), "ACC-1")


def order(order_id: str = "OMS1-1", seq: int = 1) -> Order:
    return Order(order_id, seq, "CLIENT1", "ACC-1", f"C{seq}", "IBM", Side.BUY, OrdType.LIMIT, TimeInForce.DAY,
                 D(100), D("150.00"), None, NOW)


def entries(n: int) -> list[audit.Entry]:
    return [audit.Entry(f"user{i % 3}", audit.KINDS[i % 3], {"i": i, "px": str(D(i) / 7), "note": "é ü"})
            for i in range(n)]


# --- the chain (pure) -----------------------------------------------------------------------------------
def test_a_chain_verifies_and_continues_from_its_head() -> None:
    rows = audit.chain(None, entries(5), NOW)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    more = audit.chain((rows[-1].seq, rows[-1].hash), entries(3), NOW)
    result = audit.verify([*rows, *more])
    assert result.intact and (result.rows, result.last_seq, result.last_hash) == (8, 8, more[-1].hash)
    assert audit.verify([]) == audit.Verification(0, 0, audit.GENESIS)


def test_the_hash_is_sha256_of_prev_hash_and_the_canonical_json_of_the_row() -> None:
    import hashlib

    (row,) = audit.chain(None, entries(1), NOW)
    canonical = json.dumps({"seq": row.seq, "ts": row.ts, "who": row.who, "kind": row.kind,
                            "summary": json.loads(row.summary), "prev_hash": row.prev_hash},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert audit.canonical_row(row.seq, row.ts, row.who, row.kind, row.summary, row.prev_hash) == canonical
    assert row.hash == hashlib.sha256((row.prev_hash + canonical).encode()).hexdigest()


_json_scalar = st.one_of(st.text(), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(), st.one_of(_json_scalar, st.lists(_json_scalar, max_size=3),
                                            st.dictionaries(st.text(), _json_scalar, max_size=3)), max_size=8))
def test_canonical_json_is_sorted_compact_json(value: dict[str, object]) -> None:
    assert audit.canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                                     ensure_ascii=False)


@pytest.mark.parametrize("tamper, reason", [
    (lambda r: replace(r, summary=r.summary.replace('"i":2', '"i":20')), "content does not match its hash"),
    (lambda r: replace(r, who="someone else"), "content does not match its hash"),
    (lambda r: replace(r, ts="2024-03-04T15:00:01.000000+00:00"), "content does not match its hash"),
    (lambda r: replace(r, prev_hash="f" * 64), "is not row 2's hash"),
])
def test_a_changed_row_is_the_first_broken_link(tamper: object, reason: str) -> None:
    rows = audit.chain(None, entries(6), NOW)
    rows[2] = tamper(rows[2])  # type: ignore[operator]
    result = audit.verify(rows)
    assert result.broken is not None and result.broken.seq == 3 and reason in result.broken.reason
    assert result.rows == 2


def test_a_rehashed_row_breaks_the_next_link_and_a_deleted_row_is_missing() -> None:
    rows = audit.chain(None, entries(6), NOW)
    forged = replace(rows[2], summary='{"i":99}')
    rows[2] = replace(forged, hash=audit.row_hash(forged.prev_hash, 3, forged.ts, forged.who, forged.kind,
                                                  forged.summary))
    result = audit.verify(rows)
    assert result.broken is not None and result.broken.seq == 4 and "is not row 3's hash" in result.broken.reason
    rows = audit.chain(None, entries(6), NOW)
    result = audit.verify(rows[:3] + rows[4:])
    assert result.broken == audit.Broken(5, "row 4 missing (found 5 after 3)")


def test_batch_entries_audit_business_messages_only() -> None:
    inbound = [new_order(), c.MarketPrice("IBM", D(150)), c.ClientSessionUp("CLIENT1"),
               c.SetRiskLimit("*", "x", "1", "ops"),
               c.VenueReport("VENUE-B", "OMS1-1.1", None, "V1", "X1", ExecType.TRADE, OrdStatus.FILLED, D(100),
                             D(150))]
    got = audit.batch_entries(inbound, [ack(), child()])
    assert [(e.who, e.kind, e.summary["type"]) for e in got] == [
        ("CLIENT1", "inbound", "NewOrder"), ("VENUE-B", "inbound", "VenueReport"),
        ("CLIENT1", "outbound", "ExecutionReport"), ("VENUE-B", "outbound", "VenueNewOrder")]
    assert got[0].summary == {"type": "NewOrder", "session": "CLIENT1", "cl_ord_id": "C1", "account": "ACC-1",
                              "symbol": "IBM", "side": "1", "ord_type": "2", "order_qty": "100", "price": "150.00",
                              "time_in_force": "0"}


def test_a_record_keeps_the_messages_and_the_projector_rows_them_as_before() -> None:
    # The engine stores the batch's business messages (audit.business); the projector makes the rows
    # (entries_of): the same rows batch_entries made on the engine thread, and a record written by an
    # older version, holding finished rows, is rowed as it was.
    inbound = [new_order(), c.MarketPrice("IBM", D(150)),
               c.VenueReport("VENUE-B", "OMS1-1.1", None, "V1", "X1", ExecType.TRADE, OrdStatus.FILLED, D(100),
                             D(150))]
    outbound = [ack(), child()]
    kept = audit.business(inbound, outbound)
    assert [type(m).__name__ for m in kept] == ["NewOrder", "VenueReport", "ExecutionReport", "VenueNewOrder"]
    assert audit.entries_of(kept) == audit.batch_entries(inbound, outbound)
    # the projector's entries: the same rows, their texts made without the summaries
    assert [(e.who, e.kind, e.text) for e in audit.entries_of(kept, summaries=False)] == [
        (e.who, e.kind, e.text) for e in audit.entries_of(kept)]
    old = [(e.who, e.kind, e.text) for e in audit.batch_entries(inbound, outbound)]
    assert [(e.who, e.kind, e.text) for e in audit.entries_of(old)] == old


@pytest.mark.parametrize("message", [
    new_order(), ack(), child(), replace(ack(), text='a "quoted" é', ord_rej_reason=None, tot_num_reports=0,
                                         last_rpt_requested=True, poss_resend=True),
    c.VenueReport("VENUE-B", "OMS1-1.1", None, "V1", "X1", ExecType.TRADE, OrdStatus.FILLED, D(100), D(150)),
    replace(ack(), price=D("NaN"), avg_px=D("-1E+3"), stop_px=D("-Infinity"), last_qty=D("0E-8")),
    c.MarketData("VENUE-B", "IBM", ((D(1), D(2)),), ()),  # tuples: the general encoder
], ids=lambda m: type(m).__name__)
def test_summarize_json_is_summarize_and_its_canonical_json(message: object) -> None:
    for _ in range(2):  # the first meeting of a value type (an enum) and the fast path after it
        text_only = audit.summary_text(message)  # the projector's: the text, no dict
        summary, text = audit.summarize_json(message)
        assert text_only == text
        assert summary == audit.summarize(message)
        assert text == audit.canonical_json(summary)


# --- in the journal -------------------------------------------------------------------------------------
def rows_of(journal: Journal) -> list[audit.Row]:
    return list(iter_audit(journal.engine, journal.instance))


def test_commit_writes_audit_rows_in_the_batch_transaction(db_url: str) -> None:
    journal = Journal.open(db_url, "OMS1")
    journal.create_schema()
    journal.commit([], [order()], [ack()], inbound=[new_order()], outbound=[ack(), child()])
    assert [(r.seq, r.kind, r.who) for r in rows_of(journal)] == [
        (1, "inbound", "CLIENT1"), (2, "outbound", "CLIENT1"), (3, "outbound", "VENUE-B")]
    # a second journal that did not load (so inserts the same order and outbox batch again) fails: none of
    # its audit rows stay
    again = Journal.open(db_url, "OMS1")
    with pytest.raises(Exception):  # noqa: B017 - the backend's IntegrityError
        again.commit([], [order()], [ack()], inbound=[new_order("C2")], outbound=[ack()])
    assert len(rows_of(journal)) == 3
    # and, once it has loaded the journal, its next batch continues the chain where the database has it
    again.load()
    again.commit([], [order("OMS1-2", 2)], [ack("OMS1-2")], inbound=[new_order("C3")], outbound=[ack("OMS1-2")])
    journal.append_audit("alice", "admin", {"action": "risk.set", "before": "1", "after": "2"})
    rows = rows_of(journal)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert audit.verify(rows).intact


def test_a_batch_with_nothing_to_audit_writes_no_rows(db_url: str) -> None:
    journal = Journal.open(db_url, "OMS1")
    journal.create_schema()
    journal.commit([], [], None, inbound=[c.MarketPrice("IBM", D(150))], outbound=[])
    assert rows_of(journal) == []


def test_operator_rows_from_another_thread_keep_one_chain(db_url: str) -> None:
    journal = Journal.open(db_url, "OMS1")
    journal.create_schema()

    def operator() -> None:
        for i in range(30):
            journal.append_audit("bob", "admin", {"action": "ping", "i": i})

    t = threading.Thread(target=operator)
    t.start()
    for i in range(30):
        journal.commit([], [order(f"OMS1-{i}", i + 1)], None, inbound=[new_order(f"C{i}")],
                       outbound=[ack(f"OMS1-{i}")])
    t.join()
    rows = rows_of(journal)
    assert len(rows) == 90 and audit.verify(rows).intact
    assert sum(r.who == "bob" for r in rows) == 30


def test_audit_verify_command_reports_the_tampered_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    cfg = tmp_path / "fixoms.toml"
    cfg.write_text(f'[engine]\ninstance = "OMS1"\n[database]\nurl = "{url}"\n')
    journal = Journal.open(url, "OMS1")
    journal.create_schema()
    for i in range(4):
        journal.commit([], [order(f"OMS1-{i}", i + 1)], None, inbound=[new_order(f"C{i}")],
                       outbound=[ack(f"OMS1-{i}"), child(f"OMS1-{i}")])
    runner = CliRunner()
    res = runner.invoke(cli, ["--config", str(cfg), "audit", "verify"])
    assert res.exit_code == 0 and res.stdout.startswith("OMS1: 12 rows, chain intact (last hash ")
    with journal.engine.begin() as conn:  # an insider lowers the quantity of one order sent to a venue
        summary = conn.execute(select(audit_t.c.summary).where(audit_t.c.seq == 6)).scalar_one()
        conn.execute(update(audit_t).where(audit_t.c.seq == 6)
                     .values(summary=summary.replace('"qty":"100"', '"qty":"10"')))
    res = runner.invoke(cli, ["--config", str(cfg), "audit", "verify"])
    assert res.exit_code == 1
    assert "OMS1: chain broken at row 6: content does not match its hash" in res.stderr
    assert "(5 rows verified before it)" in res.stderr
    with journal.engine.begin() as conn:  # covering it up by deleting the row shows as well
        conn.execute(delete(audit_t).where(audit_t.c.seq == 6))
        assert conn.execute(select(func.count()).select_from(audit_t)).scalar_one() == 11
    res = runner.invoke(cli, ["--config", str(cfg), "audit", "verify", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)[0]["broken"] == {"seq": 7, "reason": "row 6 missing (found 7 after 5)"}
