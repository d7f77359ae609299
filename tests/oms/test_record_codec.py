"""The journal log's record format (oms.record_codec): what it writes reads back equal, in another process too,
and what older versions wrote still reads."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from oms import commands as c
from oms import record_codec
from oms.audit import Entry
from oms.decider import Decider, EngineConfig
from oms.enums import ExecType, OrdStatus, OrdType, Side
from oms.model import ZERO
from oms.projector import BatchRecord
from oms.reports import ExecutionReport
from oms.rows import child_snapshot, order_snapshot
from sor.static import StaticRouter

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
# PREAMBLE_1's digest: a record in a log names the preamble's objects by their index in this list, so the
# list can never change. A new list is a new format (a new first byte), and readers keep this one.
PREAMBLE_1_SHA256 = "8ade81f48468e5e4d3b6b56ae4a70811ef08d6c5f2e618f7e3176873035a92af"


def records() -> list[BatchRecord]:
    """What Journal.append would record for a new order, its venue's ack and fills, and a cancel."""
    d = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    d.decide([c.VenueSessionUp("V1")])
    commands = [
        [c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D("150.25"))],
        [c.VenueReport("V1", "T-1.1", None, "VO1", "A1", ExecType.NEW, OrdStatus.NEW),
         c.VenueReport("V1", "T-1.1", None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, D(40),
                       D("149.5"))],
        [c.CancelOrder("S1", "C2", "C1", "IBM", Side.BUY)],
    ]
    out = []
    for batch in commands:
        b = d.decide(batch)
        assert b.events
        orders = list(b.dirty.values())
        children = [child_snapshot(ch) for o in orders for ch in o.children.values()]
        out.append(BatchRecord(datetime.now(UTC), b.events, [order_snapshot(o) for o in orders], children,
                               [m for m in b.outbound if isinstance(m, ExecutionReport)], [*batch, *b.outbound]))
    return out


def test_preamble_1_is_frozen_and_every_entry_resolves() -> None:
    assert record_codec.digest(record_codec.PREAMBLE_1) == PREAMBLE_1_SHA256, (
        "PREAMBLE_1 changed: records already in logs name its entries by index. Add a new format instead "
        f"(digest now {record_codec.digest(record_codec.PREAMBLE_1)})")
    assert len(set(record_codec.PREAMBLE_1)) == len(record_codec.PREAMBLE_1)
    objects = [record_codec.resolve(spec) for spec in record_codec.PREAMBLE_1]
    assert len({id(o) for o in objects}) == len(objects)


def test_records_read_back_equal_with_the_same_classes_and_members() -> None:
    for record in records():
        payload = record_codec.encode(record)
        assert payload[:1] == record_codec.FORMAT_1
        back = record_codec.decode(payload)
        assert back == record
        assert [type(e) for e in back.events] == [type(e) for e in record.events]
        sides = [m.side for m in back.audit if isinstance(m, c.NewOrder)]
        assert all(s is Side.BUY for s in sides)
        assert record_codec.decode(memoryview(payload)) == record  # as a driver may hand it back


def test_the_preamble_is_smaller_on_the_wire_than_names() -> None:
    record = records()[0]
    plain = pickle.dumps(record, protocol=3)
    assert len(record_codec.encode(record)) < len(plain)
    assert b"OrderAccepted" in plain and b"OrderAccepted" not in record_codec.encode(record)


def test_objects_outside_the_preamble_and_the_engines_zero_pickle_too() -> None:
    entry = Entry("S1", "inbound", {"qty": "1"}, "text")  # not in the preamble: pickled by name
    record = BatchRecord(datetime.now(UTC), [], [("O1", ZERO, D(0), D("1.50"), None)], [], [], [entry])
    back = record_codec.decode(record_codec.encode(record))
    assert back == record
    assert back.orders[0][1] == 0 and str(back.orders[0][2]) == "0"


def test_each_record_is_read_on_its_own() -> None:
    """The writer's memo starts from the preamble for every record: a record never names an object that an
    earlier record put in the memo, so records read in any order, each alone."""
    recs = records()
    payloads = [record_codec.encode(r) for r in recs]
    assert [record_codec.encode(r) for r in recs] == payloads
    for payload, record in reversed(list(zip(payloads, recs, strict=True))):
        assert record_codec.decode(payload) == record


def test_another_process_reads_what_this_one_wrote() -> None:
    """The reader's memo is built from the preamble's names alone: a projector or standby process decodes
    what the engine process encoded."""
    record = records()[1]
    payload = record_codec.encode(record)
    code = ("import sys; from oms import record_codec; r = record_codec.decode(sys.stdin.buffer.read()); "
            "print(repr(r))")
    out = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, cwd=ROOT, check=True)
    assert out.stdout.decode().strip() == repr(record)


def test_plain_pickles_of_older_versions_still_read() -> None:
    record = records()[0]
    for protocol in (2, 3, 4, 5):
        assert record_codec.decode(pickle.dumps(record, protocol=protocol)) == record


def test_a_record_of_an_unknown_format_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        record_codec.decode(b"\xf7" + pickle.dumps([], protocol=3))
