"""How a journal log record (oms.projector.BatchRecord) is stored: pickle, with what every record names known
to both ends in advance.

A record is a batch's events, snapshots and messages: dataclasses of a few dozen classes, enum members,
Decimals and datetimes. A plain pickle writes each class and enum member it meets by name, in every record:
for each, the writer (the engine thread, before anything of the batch is sent) looks its module up and
calls the member's Python `__reduce_ex__`, and the reader (the projector, a standby, a restart) imports it
and calls the enum. That was about half of pickling a one-order record (55 -> 27 us) and most of
unpickling's own work.

Format 1 (the payload's first byte 0xF1, then a protocol 3 pickle): the pickler's memo starts out holding
PREAMBLE_1's objects at indices 0..n-1, so a record names them by index (BINGET); the reader's memo starts
with the same objects at the same indices. Protocol 3, not 5: from protocol 4 on, memo entries are numbered
implicitly (MEMOIZE: the next free index), and Python 3.11's Unpickler cannot be handed a memo together
with its count (its `memo` setter takes another unpickler's entries but not their number; a dict it drops).

PREAMBLE_1 is frozen (tests/oms/test_record_codec.py checks its digest): a log's records outlive the code
that wrote them (a log tail projected after an upgrade, a standby of the next version), so changing the
list means a new format with a new first byte, and readers keep every old list. Classes and members added
later still pickle, by name. A payload that starts with 0x80 is a plain pickle: every record written before
format 1, and those written by migrations.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import struct
from decimal import Decimal
from typing import Any

FORMAT_1 = b"\xf1"
_PLAIN = b"\x80"  # pickle's PROTO opcode: the first byte of any pickle of protocol 2 or later
_PROTOCOL = 3

# "module:qualname" of a class, an enum member or another constant, in memo order; "Decimal(0)" is a value.
PREAMBLE_1: tuple[str, ...] = (
    "decimal:Decimal", "Decimal(0)", "datetime:datetime", "datetime:date", "datetime:timezone",
    "datetime:timezone.utc", "oms.projector:BatchRecord",
    "oms.enums:CxlRejReason", "oms.enums:CxlRejReason.TOO_LATE_TO_CANCEL", "oms.enums:CxlRejReason.UNKNOWN_ORDER",
    "oms.enums:CxlRejReason.BROKER_OPTION", "oms.enums:CxlRejReason.ALREADY_PENDING",
    "oms.enums:CxlRejReason.DUPLICATE_CL_ORD_ID", "oms.enums:CxlRejReason.OTHER",
    "oms.enums:CxlRejResponseTo", "oms.enums:CxlRejResponseTo.CANCEL", "oms.enums:CxlRejResponseTo.REPLACE",
    "oms.enums:ExecRestatementReason", "oms.enums:ExecRestatementReason.GT_CORPORATE_ACTION",
    "oms.enums:ExecRestatementReason.GT_RENEWAL", "oms.enums:ExecRestatementReason.VERBAL_CHANGE",
    "oms.enums:ExecRestatementReason.REPRICING", "oms.enums:ExecRestatementReason.BROKER_OPTION",
    "oms.enums:ExecRestatementReason.PARTIAL_DECLINE", "oms.enums:ExecRestatementReason.CANCEL_ON_TRADING_HALT",
    "oms.enums:ExecRestatementReason.CANCEL_ON_SYSTEM_FAILURE", "oms.enums:ExecRestatementReason.MARKET_OPTION",
    "oms.enums:ExecRestatementReason.CANCELED_NOT_BEST", "oms.enums:ExecRestatementReason.WAREHOUSE_RECAP",
    "oms.enums:ExecRestatementReason.OTHER",
    "oms.enums:ExecType", "oms.enums:ExecType.NEW", "oms.enums:ExecType.PARTIAL_FILL", "oms.enums:ExecType.FILL",
    "oms.enums:ExecType.DONE_FOR_DAY", "oms.enums:ExecType.CANCELED", "oms.enums:ExecType.REPLACED",
    "oms.enums:ExecType.PENDING_CANCEL", "oms.enums:ExecType.STOPPED", "oms.enums:ExecType.REJECTED",
    "oms.enums:ExecType.SUSPENDED", "oms.enums:ExecType.PENDING_NEW", "oms.enums:ExecType.CALCULATED",
    "oms.enums:ExecType.EXPIRED", "oms.enums:ExecType.RESTATED", "oms.enums:ExecType.PENDING_REPLACE",
    "oms.enums:ExecType.TRADE", "oms.enums:ExecType.TRADE_CORRECT", "oms.enums:ExecType.TRADE_CANCEL",
    "oms.enums:ExecType.ORDER_STATUS",
    "oms.enums:OrdRejReason", "oms.enums:OrdRejReason.BROKER_OPTION", "oms.enums:OrdRejReason.UNKNOWN_SYMBOL",
    "oms.enums:OrdRejReason.EXCHANGE_CLOSED", "oms.enums:OrdRejReason.ORDER_EXCEEDS_LIMIT",
    "oms.enums:OrdRejReason.TOO_LATE_TO_ENTER", "oms.enums:OrdRejReason.UNKNOWN_ORDER",
    "oms.enums:OrdRejReason.DUPLICATE_ORDER", "oms.enums:OrdRejReason.STALE_ORDER",
    "oms.enums:OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC", "oms.enums:OrdRejReason.INCORRECT_QUANTITY",
    "oms.enums:OrdRejReason.UNKNOWN_ACCOUNT", "oms.enums:OrdRejReason.OTHER",
    "oms.enums:OrdStatus", "oms.enums:OrdStatus.NEW", "oms.enums:OrdStatus.PARTIALLY_FILLED",
    "oms.enums:OrdStatus.FILLED", "oms.enums:OrdStatus.DONE_FOR_DAY", "oms.enums:OrdStatus.CANCELED",
    "oms.enums:OrdStatus.REPLACED", "oms.enums:OrdStatus.PENDING_CANCEL", "oms.enums:OrdStatus.STOPPED",
    "oms.enums:OrdStatus.REJECTED", "oms.enums:OrdStatus.SUSPENDED", "oms.enums:OrdStatus.PENDING_NEW",
    "oms.enums:OrdStatus.CALCULATED", "oms.enums:OrdStatus.EXPIRED", "oms.enums:OrdStatus.PENDING_REPLACE",
    "oms.enums:OrdType", "oms.enums:OrdType.MARKET", "oms.enums:OrdType.LIMIT", "oms.enums:OrdType.STOP",
    "oms.enums:OrdType.STOP_LIMIT", "oms.enums:OrdType.PEGGED",
    "oms.enums:Side", "oms.enums:Side.BUY", "oms.enums:Side.SELL", "oms.enums:Side.SELL_SHORT",
    "oms.enums:TimeInForce", "oms.enums:TimeInForce.DAY", "oms.enums:TimeInForce.GTC",
    "oms.enums:TimeInForce.AT_THE_OPEN", "oms.enums:TimeInForce.IOC", "oms.enums:TimeInForce.FOK",
    "oms.enums:TimeInForce.GTD", "oms.enums:TimeInForce.AT_THE_CLOSE",
    "oms.events:CancelRefused", "oms.events:CancelRequested", "oms.events:ChildAcked",
    "oms.events:ChildCancelRefused", "oms.events:ChildCancelRequested", "oms.events:ChildDone",
    "oms.events:ChildFilled", "oms.events:ChildInDoubt", "oms.events:ChildReplaceRefused",
    "oms.events:ChildReplaceRequested", "oms.events:ChildReplaced", "oms.events:ChildRouted",
    "oms.events:ExpiryRequested", "oms.events:FillBusted", "oms.events:FillCorrected",
    "oms.events:FillUnallocated", "oms.events:OrderAccepted", "oms.events:OrderCanceled",
    "oms.events:OrderDoneForDay", "oms.events:OrderExpired", "oms.events:OrderRejected", "oms.events:OrderRenewed",
    "oms.events:OrderReplaced", "oms.events:OrderTriggered", "oms.events:ReplaceRequested",
    "oms.events:RequestRefused", "oms.events:RiskLimitChanged", "oms.events:TcaRecorded",
    "oms.events:TradingStateChanged",
    "oms.commands:AdminCancel", "oms.commands:CancelOrder", "oms.commands:ClientSessionDown",
    "oms.commands:ClientSessionUp", "oms.commands:EngineCall", "oms.commands:ExpireOrders",
    "oms.commands:InvalidOrder", "oms.commands:MarketData", "oms.commands:MarketPrice", "oms.commands:MassCancel",
    "oms.commands:MassStatus", "oms.commands:NewOrder", "oms.commands:ReconcileVenue", "oms.commands:RenewOrders",
    "oms.commands:ReplaceOrder", "oms.commands:SetRiskLimit", "oms.commands:SetTradingState",
    "oms.commands:StatusRequest", "oms.commands:Tick", "oms.commands:VenueCancelReject", "oms.commands:VenueReport",
    "oms.commands:VenueSessionDown", "oms.commands:VenueSessionUp", "oms.commands:VenueSymbolStatus",
    "oms.reports:CancelReject", "oms.reports:ExecutionReport", "oms.reports:MassCancelReport",
    "oms.reports:VenueCancel", "oms.reports:VenueNewOrder", "oms.reports:VenueReplace",
    "oms.reports:VenueStatusRequest",
)

# Objects the writer also names by a preamble index: equal to that entry and immutable, so a reader gets an
# equal value. oms.model.ZERO is the engine's zero quantity (order defaults, the decider's refusals).
_ALIASES: dict[str, tuple[tuple[str, str], ...]] = {"Decimal(0)": (("oms.model", "ZERO"),)}


def digest(preamble: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(preamble).encode()).hexdigest()


def resolve(spec: str) -> Any:
    """The object a preamble entry names."""
    if spec.startswith("Decimal("):
        return Decimal(spec[len("Decimal("):-1])
    module, _, path = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class _Codec:
    """One format's two ends, built on first use (the preamble imports the record's modules)."""

    def __init__(self, preamble: tuple[str, ...]) -> None:
        self.preamble = preamble
        self._writer: pickle.Pickler | None = None
        self._reader: pickle.Unpickler | None = None

    def writer(self) -> pickle.Pickler:
        """A pickler whose memo is the preamble: each record's pickler copies it (a C-level table copy)."""
        if self._writer is None:
            memo: dict[int, tuple[int, Any]] = {}
            for i, spec in enumerate(self.preamble):
                obj = resolve(spec)
                memo[id(obj)] = (i, obj)
                for module, name in _ALIASES.get(spec, ()):
                    alias = getattr(importlib.import_module(module), name, None)
                    if alias is not None and alias == obj and type(alias) is type(obj):
                        memo.setdefault(id(alias), (i, alias))
            template = pickle.Pickler(io.BytesIO(), _PROTOCOL)
            template.memo = memo
            self._writer = template
        return self._writer

    def reader(self) -> pickle.Unpickler:
        """An unpickler that has loaded the preamble into its memo at indices 0..n-1: each entry pickled on its
        own without memoizing (`fast`), then put at its index (LONG_BINPUT) and popped."""
        if self._reader is None:
            program = bytearray(pickle.PROTO + bytes([_PROTOCOL]))
            for i, spec in enumerate(self.preamble):
                buf = io.BytesIO()
                pickler = pickle.Pickler(buf, _PROTOCOL)
                pickler.fast = True
                pickler.dump(resolve(spec))
                program += buf.getvalue()[2:-1] + pickle.LONG_BINPUT + struct.pack("<I", i) + pickle.POP
            program += pickle.NONE + pickle.STOP
            reader = pickle.Unpickler(io.BytesIO(bytes(program)))
            reader.load()
            self._reader = reader
        return self._reader


_FORMATS: dict[bytes, _Codec] = {FORMAT_1: _Codec(PREAMBLE_1)}
_CURRENT = _FORMATS[FORMAT_1]


def encode(record: Any) -> bytes:
    """The payload of a log row (format 1). Raises whatever pickle raises for what cannot be stored."""
    buf = io.BytesIO()
    buf.write(FORMAT_1)
    pickler = pickle.Pickler(buf, _PROTOCOL)
    pickler.memo = _CURRENT.writer().memo
    pickler.dump(record)
    return buf.getvalue()


def decode(payload: bytes | memoryview) -> Any:
    """A log row's record, whichever format wrote it."""
    head = bytes(payload[:1])
    if head == _PLAIN:
        return pickle.loads(payload)
    codec = _FORMATS.get(head)
    if codec is None:
        raise ValueError(f"journal log record of an unknown format (first byte {head!r}): written by a newer "
                         "version of fixoms?")
    stream = io.BytesIO(payload)
    stream.seek(1)
    # Buffered: the unpickler then reads ahead (peek) instead of calling `read` for each opcode, which
    # protocol 3 (no frames) would otherwise make it do.
    unpickler = pickle.Unpickler(io.BufferedReader(stream))
    unpickler.memo = codec.reader().memo
    return unpickler.load()
