"""Every kind of ExecutionReport the engine sends carries the fields the FIX 4.2 and FIX 4.4 dictionaries
require (QuickFIX's own DataDictionary.validate decides), also the answers to requests that named no
order, no Symbol or no Side: a FIX 4.2 client's QuickFIX drops a report without Symbol(55) with a
session Reject, so the client never sees it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from fix_engine import codec
from fix_engine.application import dictionary
from fix_engine.quickfix_import import fix
from oms import commands as c
from oms.decider import Decider, EngineConfig
from oms.enums import ExecType, OrdRejReason, OrdStatus, OrdType, Side
from oms.reports import ExecutionReport, VenueNewOrder
from sor.static import StaticRouter

D = Decimal


def reports_of_every_kind() -> list[ExecutionReport]:
    d = Decider(StaticRouter({"IBM": "V1"}), EngineConfig(instance="T", symbols=frozenset({"IBM"}), tick_s=0))
    d.decide([c.VenueSessionUp("V1")])
    b = d.decide([c.NewOrder("S1", "C1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, D(100), D(150))])
    child = next(o for o in b.outbound if isinstance(o, VenueNewOrder)).child_id
    out = list(b.outbound)
    out += d.decide([
        c.VenueReport("V1", child, None, "VO1", "X1", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, D(40), D(150)),
        c.StatusRequest("S1", "NOPE", None, "IBM", "1"),  # unknown order
        c.MassStatus("S1", "M1", "1", "MSFT"),  # nothing open in that symbol
        c.MassStatus("S2", "M2", "7"),  # all of a session with none: the request names no symbol
        c.InvalidOrder("S1", "C2", "", "", "", OrdRejReason.UNKNOWN_SYMBOL, "Symbol(55) missing"),
        c.NewOrder("S1", "C3", "ACC", "XYZ", Side.SELL, OrdType.LIMIT, D(5), D(1)),
    ]).outbound
    out += d.decide([c.VenueReport("V1", child, None, "VO1", "X2", ExecType.TRADE_CANCEL, OrdStatus.NEW,
                                   exec_ref_id="X1")]).outbound
    reports = [o for o in out if isinstance(o, ExecutionReport)]
    kinds = {(r.exec_type, r.ord_status) for r in reports}
    assert {(ExecType.ORDER_STATUS, OrdStatus.REJECTED), (ExecType.TRADE_CANCEL, OrdStatus.NEW)} <= kinds
    return reports


def validate(raw: str, begin: str) -> None:
    message = fix.Message(raw, False)
    header = message.getHeader()
    for tag, value in ((49, "FIXOMS"), (56, "CLIENT"), (34, "1"), (52, "20240102-15:30:00.000")):
        header.setField(tag, value)
    dictionary(begin).validate(message)


@pytest.mark.parametrize("begin", [codec.FIX42, codec.FIX44])
def test_every_execution_report_has_the_dictionarys_required_fields(begin: str) -> None:
    # OrderMassStatusRequest is FIX 4.4 only: a FIX 4.2 session never gets its reports.
    reports = [r for r in reports_of_every_kind() if begin == codec.FIX44 or not r.mass_status_req_id]
    for r in reports:
        raw = codec.encode_report(r, begin)
        validate(raw, begin)  # raises RequiredTagMissing naming the tag
        fields = codec.parse(raw)
        assert fields[codec.SYMBOL] and fields[codec.SIDE], raw.replace(codec.SOH, "|")


def test_the_unknown_order_status_echoes_what_the_request_named() -> None:
    (st,) = [r for r in reports_of_every_kind() if r.cl_ord_id == "NOPE"]
    fields = codec.parse(codec.encode_report(st, codec.FIX44))
    assert (fields[codec.SYMBOL], fields[codec.SIDE], fields[codec.ORD_STATUS], fields[codec.ORD_REJ_REASON]) == (
        "IBM", "1", "8", "5")
    (all_orders,) = [r for r in reports_of_every_kind() if r.mass_status_req_id == "M2"]
    fields = codec.parse(codec.encode_report(all_orders, codec.FIX44))
    assert (fields[codec.SYMBOL], fields[codec.SIDE]) == (codec.NOT_APPLICABLE, codec.SIDE_UNDISCLOSED)


@pytest.mark.parametrize("reason,fix44,fix42", [(6, "6", None), (2, "2", "2"), (11, "99", None), (None, None, None)])
def test_restatement_reason_is_sent_as_each_dictionary_allows(reason: int | None, fix44: str | None,
                                                              fix42: str | None) -> None:
    """A venue's 378 passes through; one a FIX 4.4 dictionary lacks goes as 99 (Other), one FIX 4.2
    lacks is left out (4.2 has no Other), so the client's QuickFIX never rejects the report for it."""
    r = dataclasses.replace(reports_of_every_kind()[0], exec_type=ExecType.CANCELED, ord_status=OrdStatus.CANCELED,
                            exec_restatement_reason=reason)
    for begin, expected in ((codec.FIX44, fix44), (codec.FIX42, fix42)):
        raw = codec.encode_report(r, begin)
        validate(raw, begin)
        assert codec.parse(raw).get(codec.EXEC_RESTATEMENT_REASON) == expected
