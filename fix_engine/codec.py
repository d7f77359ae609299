"""FIX <-> domain. The only module that knows tag numbers.

Inbound messages are decoded from their string form (one SWIG call, then plain Python), outbound
messages are built as strings and parsed once by QuickFIX: both are several times cheaper than
setting fields one by one through SWIG.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from oms import commands as c
from oms.enums import (
    CxlRejReason,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from oms.model import ZERO  # the one zero the journal's record format names by index (oms.record_codec)
from oms.reports import (
    CancelReject,
    ExecutionReport,
    MassCancelReport,
    VenueCancel,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
)

SOH = "\x01"

# Tags (FIX 4.2 / 4.4 share these numbers).
ACCOUNT, AVG_PX, CL_ORD_ID, CUM_QTY, EXEC_ID, EXEC_TRANS_TYPE = 1, 6, 11, 14, 17, 20
HANDL_INST, LAST_MKT, LAST_PX, LAST_QTY, MSG_SEQ_NUM, MSG_TYPE = 21, 30, 31, 32, 34, 35
ORDER_ID, ORDER_QTY, ORD_STATUS, ORD_TYPE, ORIG_CL_ORD_ID, POSS_DUP = 37, 38, 39, 40, 41, 43
PRICE, REF_SEQ_NUM, SIDE, SYMBOL, TEXT, TIF, TRANSACT_TIME = 44, 45, 54, 55, 58, 59, 60
POSS_RESEND, STOP_PX, EX_DESTINATION, CXL_REJ_REASON, ORD_REJ_REASON = 97, 99, 100, 102, 103
MAX_FLOOR, EXPIRE_TIME, EXEC_TYPE, LEAVES_QTY, REF_MSG_TYPE = 111, 126, 150, 151, 372
BUSINESS_REJECT_REASON, CXL_REJ_RESPONSE_TO, TARGET_STRATEGY = 380, 434, 847
USERNAME, PASSWORD = 553, 554
EXEC_REF_ID, EXPIRE_DATE = 19, 432
EXEC_RESTATEMENT_REASON = 378
MASS_CANCEL_REQUEST_TYPE, MASS_CANCEL_RESPONSE, MASS_CANCEL_REJECT_REASON = 530, 531, 532
TOTAL_AFFECTED_ORDERS, MASS_STATUS_REQ_ID, MASS_STATUS_REQ_TYPE = 533, 584, 585
TOT_NUM_REPORTS, LAST_RPT_REQUESTED = 911, 912
COPY_MSG_INDICATOR = 797
MD_REQ_ID, SUBSCRIPTION_REQUEST_TYPE, MARKET_DEPTH, MD_UPDATE_TYPE = 262, 263, 264, 265
NO_MD_ENTRY_TYPES, NO_MD_ENTRIES, MD_ENTRY_TYPE, MD_ENTRY_PX, MD_ENTRY_SIZE = 267, 268, 269, 270, 271
MD_UPDATE_ACTION, NO_RELATED_SYM = 279, 146
MD_BID, MD_OFFER, MD_TRADE = "0", "1", "2"

NEW_ORDER_SINGLE, CANCEL_REQUEST, REPLACE_REQUEST, STATUS_REQUEST = "D", "F", "G", "H"
EXECUTION_REPORT, CANCEL_REJECT, BUSINESS_REJECT, LOGON = "8", "9", "j", "A"
MASS_CANCEL_REQUEST, MASS_CANCEL_REPORT, MASS_STATUS_REQUEST = "q", "r", "AF"
MD_REQUEST, MD_SNAPSHOT, MD_INCREMENTAL, MD_REQUEST_REJECT = "V", "W", "X", "Y"

# TargetStrategy(847) is an enumerated int in the FIX 4.4 dictionary (1 VWAP, 2 Participate,
# 3 Minimize market impact) and QuickFIX refuses other values, so the standard ones map to our nearest
# strategies and any strategy can be named in the user-defined tag 20847. Our dictionaries
# (fix_engine/spec/generate.py) define both on NewOrderSingle, for FIX 4.2 as well.
TARGET_STRATEGIES = {"2": "pro_rata", "3": "cont_kukanov"}
ROUTING_STRATEGY = 20847

FIX42 = "FIX.4.2"
FIX44 = "FIX.4.4"

# FIX 4.2 has no ExecType Trade/OrderStatus and fewer reject reasons: downgrade at the edge only.
_FIX42_REJ = {int(r) for r in OrdRejReason if r <= 8}
_FIX42_CXL = {0, 1, 2, 3}
# ExecRestatementReason(378) values each dictionary knows: a venue's other value goes to a FIX 4.4 client
# as 99 (Other) and is left out for FIX 4.2 (which has no Other); the Text still says what happened.
_FIX42_RESTATEMENT = frozenset(range(6))
_FIX44_RESTATEMENT = frozenset(range(11)) | {99}


# FIX value -> member, for the enums decoded from every message: a dict lookup instead of the Enum call
# (EnumType.__call__ and __new__ in Python, ~1 us each, five of them a resting order). A value not in a
# table goes to the Enum call, which raises the same ValueError as before.
_SIDES: dict[str, Side] = {m.value: m for m in Side}
_ORD_TYPES: dict[str, OrdType] = {m.value: m for m in OrdType}
_TIFS: dict[str, TimeInForce] = {m.value: m for m in TimeInForce}
_EXEC_TYPES: dict[str, ExecType] = {m.value: m for m in ExecType}
_ORD_STATUSES: dict[str, OrdStatus] = {m.value: m for m in OrdStatus}
# An enum member's FIX value as the encoders read it: `member._value_`, an attribute, where `.value` is a
# property written in Python (enum.property, ~0.5 us a read; an order's messages read ~16).
_DAY, _ORDER_STATUS_REPORT, _NEW = TimeInForce.DAY.value, ExecType.ORDER_STATUS.value, OrdStatus.NEW.value


# The longest identifiers we take (the journal's columns are wider): longer ones are refused up front
# so no batch can fail on them in the database.
ID_LIMITS = {CL_ORD_ID: ("ClOrdID", 64), ORIG_CL_ORD_ID: ("OrigClOrdID", 64), ACCOUNT: ("Account", 32),
             SYMBOL: ("Symbol", 16), EX_DESTINATION: ("ExDestination", 32), ORDER_ID: ("OrderID", 64),
             MASS_STATUS_REQ_ID: ("MassStatusReqID", 64)}


# Quantities and prices we take: far beyond any instrument, and within what the journal's decimal columns
# (40 characters) and the risk arithmetic (28 significant digits) hold exactly.
MAX_NUMBER = Decimal(10) ** 15
MAX_DECIMALS = 10


def too_long(fields: dict[int, str]) -> tuple[int, str] | None:
    for tag, (name, limit) in ID_LIMITS.items():
        value = fields.get(tag)
        if value is not None and len(value) > limit:
            return tag, f"{name}({tag}) longer than {limit} characters"
    return None


class DecodeError(Exception):
    """A message that cannot become a domain command. `tag` names the offending field."""

    def __init__(self, text: str, tag: int = 0) -> None:
        super().__init__(text)
        self.tag = tag
        self.text = text


def parse(raw: str) -> dict[int, str]:
    """Tag -> value of a whole message string; for repeated tags the last wins (D/F/G/H have none)."""
    out: dict[int, str] = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            try:
                out[int(tag)] = value
            except ValueError:
                raise DecodeError(f"malformed field {part[:20]!r}") from None
    return out


def field(raw: str, tag: int) -> str:
    """One field's value without parsing the whole message ("" if absent; the first if repeated)."""
    marker = f"{SOH}{tag}="
    start = raw.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    end = raw.find(SOH, start)
    return raw[start:] if end < 0 else raw[start:end]


# (second since the epoch, its "YYYYMMDD-HH:MM:SS." text): every report of a busy second shares it
_second: tuple[int, str] = (-1, "")


def utc_timestamp(ts: datetime | None = None) -> str:
    """UTCTimestamp with milliseconds, of `ts` or of now."""
    if ts is not None:
        return ts.strftime("%Y%m%d-%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    global _second
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, time.strftime("%Y%m%d-%H:%M:%S.", time.gmtime(sec)))
    return f"{cached[1]}{ns // 1_000_000:03d}"


# The numbers a session sends repeat (prices near the touch, round quantities): each text checked once
# (Decimals are immutable, so one may be shared), and each value formatted once. Cleared when full.
_NUMBERS: dict[str, Decimal] = {}
_TEXTS: dict[Decimal, str] = {}
_CACHED_MAX = 50_000


def _dec(fields: dict[int, str], tag: int, name: str) -> Decimal | None:
    raw = fields.get(tag)
    if raw is None or raw == "":
        return None
    known = _NUMBERS.get(raw)
    if known is not None:
        return known
    value = _checked_number(raw, tag, name)
    if len(_NUMBERS) >= _CACHED_MAX:
        _NUMBERS.clear()
    _NUMBERS[raw] = value
    return value


def _checked_number(raw: str, tag: int, name: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DecodeError(f"{name}({tag}) is not a number: {raw!r}", tag) from None
    if not value.is_finite():
        raise DecodeError(f"{name}({tag}) is not a finite number: {raw!r}", tag)
    if abs(value) >= MAX_NUMBER or value.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
        raise DecodeError(f"{name}({tag}) out of range (below {MAX_NUMBER:,}, at most {MAX_DECIMALS} decimals): "
                          f"{raw[:40]!r}", tag)
    return value


def _int(fields: dict[int, str], tag: int, name: str) -> int | None:
    raw = fields.get(tag)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise DecodeError(f"{name}({tag}) is not a non-negative integer: {raw[:20]!r}", tag)
    return int(raw)


def _required(fields: dict[int, str], tag: int, name: str) -> str:
    value = fields.get(tag)
    if value is None or value == "":
        raise DecodeError(f"required field {name}({tag}) missing", tag)
    return value


def _fmt(value: Decimal | None) -> str:
    if value is None:
        return ""
    # Equal Decimals share a key whatever their exponent (150.0 == 150.00), and normalize() makes the
    # same text of both: caching by value is exact - but for zero, whose sign equality ignores.
    if not value:
        return format(value.normalize(), "f")
    text = _TEXTS.get(value)
    if text is None:
        text = format(value.normalize(), "f")
        if len(_TEXTS) >= _CACHED_MAX:
            _TEXTS.clear()
        _TEXTS[value] = text
    return text


# --- client side: decode requests ----------------------------------------------------------------
def decode_client(raw: str, session: str) -> c.Command:
    fields = parse(raw)
    msg_type = fields.get(MSG_TYPE, "")
    if ROUTING_STRATEGY in fields and len(fields[ROUTING_STRATEGY]) > 32:
        fields[ROUTING_STRATEGY] = ""  # not a strategy we know: route by default
    problem = too_long(fields)
    if problem is not None:
        if msg_type == NEW_ORDER_SINGLE:
            # echoed in full on the reject (not stored in a column: no order row for an invalid order)
            return c.InvalidOrder(session, fields.get(CL_ORD_ID, ""), fields.get(SYMBOL, ""),
                                  fields.get(SIDE, ""), fields.get(ORDER_QTY, ""), OrdRejReason.OTHER, problem[1])
        raise DecodeError(problem[1], problem[0])
    if msg_type == NEW_ORDER_SINGLE:
        return decode_new_order(fields, session)
    if msg_type == CANCEL_REQUEST:
        return c.CancelOrder(
            session=session,
            cl_ord_id=_required(fields, CL_ORD_ID, "ClOrdID"),
            orig_cl_ord_id=_required(fields, ORIG_CL_ORD_ID, "OrigClOrdID"),
            symbol=fields.get(SYMBOL, ""),
            side=fields.get(SIDE, ""),
            order_id=fields.get(ORDER_ID) or None,
            poss_resend=maybe_sent_before(fields),
        )
    if msg_type == REPLACE_REQUEST:
        return decode_replace(fields, session)
    if msg_type == STATUS_REQUEST:
        return c.StatusRequest(session, _required(fields, CL_ORD_ID, "ClOrdID"), fields.get(ORDER_ID) or None,
                               fields.get(SYMBOL, ""), fields.get(SIDE, ""))
    if msg_type == MASS_CANCEL_REQUEST:
        return c.MassCancel(session, _required(fields, CL_ORD_ID, "ClOrdID"),
                            _required(fields, MASS_CANCEL_REQUEST_TYPE, "MassCancelRequestType"),
                            fields.get(SYMBOL, ""), fields.get(SIDE, ""))
    if msg_type == MASS_STATUS_REQUEST:
        return c.MassStatus(session, _required(fields, MASS_STATUS_REQ_ID, "MassStatusReqID"),
                            _required(fields, MASS_STATUS_REQ_TYPE, "MassStatusReqType"), fields.get(SYMBOL, ""))
    raise UnsupportedMessage(msg_type)


def decode_replace(fields: dict[int, str], session: str) -> c.Command:
    try:
        side_raw, ord_type_raw = fields.get(SIDE, ""), fields.get(ORD_TYPE, "")
        side = _SIDES.get(side_raw) or Side(side_raw)
        ord_type = _ORD_TYPES.get(ord_type_raw) or OrdType(ord_type_raw)
        tif = TimeInForce(fields[TIF]) if fields.get(TIF) else None
    except ValueError as exc:
        raise DecodeError(f"unsupported value: {exc}") from None
    qty = _dec(fields, ORDER_QTY, "OrderQty")
    if qty is None:
        raise DecodeError("required field OrderQty(38) missing", ORDER_QTY)
    return c.ReplaceOrder(
        session=session,
        cl_ord_id=_required(fields, CL_ORD_ID, "ClOrdID"),
        orig_cl_ord_id=_required(fields, ORIG_CL_ORD_ID, "OrigClOrdID"),
        symbol=fields.get(SYMBOL, ""),
        side=side,
        ord_type=ord_type,
        order_qty=qty,
        price=_dec(fields, PRICE, "Price"),
        time_in_force=tif,
        order_id=fields.get(ORDER_ID) or None,
        poss_resend=maybe_sent_before(fields),
    )


def maybe_sent_before(fields: dict[int, str]) -> bool:
    """PossResend(97)=Y (sent before under another MsgSeqNum) or PossDupFlag(43)=Y (this MsgSeqNum sent
    again, e.g. in answer to our ResendRequest after a takeover): either way a ClOrdID we already have is
    a repeat, not a duplicate."""
    return fields.get(POSS_RESEND) == "Y" or fields.get(POSS_DUP) == "Y"


def parse_utc(value: str) -> datetime:
    """UTCTimestamp (YYYYMMDD-HH:MM:SS[.sss]) or LocalMktDate (YYYYMMDD, taken as end of that UTC day)."""
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    day = datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
    return day.replace(hour=23, minute=59, second=59)


class UnsupportedMessage(Exception):
    pass


def decode_new_order(fields: dict[int, str], session: str) -> c.Command:
    cl_ord_id = _required(fields, CL_ORD_ID, "ClOrdID")
    symbol = fields.get(SYMBOL, "")
    side_raw = fields.get(SIDE, "")
    qty_raw = fields.get(ORDER_QTY, "")

    def invalid(reason: OrdRejReason, text: str) -> c.InvalidOrder:
        return c.InvalidOrder(session, cl_ord_id, symbol, side_raw, qty_raw, reason, text)

    try:
        side = _SIDES.get(side_raw) or Side(side_raw)
    except ValueError:
        return invalid(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"Side(54)={side_raw!r} not supported")
    try:
        ord_type_raw = fields.get(ORD_TYPE, "")
        ord_type = _ORD_TYPES.get(ord_type_raw) or OrdType(ord_type_raw)
    except ValueError:
        return invalid(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"OrdType(40)={fields.get(ORD_TYPE)!r} not supported")
    try:
        tif_raw = fields.get(TIF, _DAY)
        tif = _TIFS.get(tif_raw) or TimeInForce(tif_raw)
    except ValueError:
        return invalid(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"TimeInForce(59)={fields.get(TIF)!r} not supported")
    try:
        qty = _dec(fields, ORDER_QTY, "OrderQty")
        price = _dec(fields, PRICE, "Price")
        stop_px = _dec(fields, STOP_PX, "StopPx")
        max_floor = _dec(fields, MAX_FLOOR, "MaxFloor")
    except DecodeError as exc:
        return invalid(OrdRejReason.INCORRECT_QUANTITY if exc.tag == ORDER_QTY else OrdRejReason.OTHER, exc.text)
    if qty is None:
        return invalid(OrdRejReason.INCORRECT_QUANTITY, "OrderQty(38) missing")
    if not symbol:
        return invalid(OrdRejReason.UNKNOWN_SYMBOL, "Symbol(55) missing")
    expire_raw = fields.get(EXPIRE_TIME) or fields.get(EXPIRE_DATE)
    try:
        expire_time = parse_utc(expire_raw) if expire_raw else None
    except ValueError:
        return invalid(OrdRejReason.OTHER, f"ExpireTime/ExpireDate not a FIX time: {expire_raw!r}")
    return c.NewOrder(
        session=session,
        cl_ord_id=cl_ord_id,
        account=fields.get(ACCOUNT, ""),
        symbol=symbol,
        side=side,
        ord_type=ord_type,
        order_qty=qty,
        price=price,
        stop_px=stop_px,
        time_in_force=tif,
        max_floor=max_floor,
        expire_time=expire_time,
        ex_destination=fields.get(EX_DESTINATION) or None,
        target_strategy=fields.get(ROUTING_STRATEGY) or TARGET_STRATEGIES.get(fields.get(TARGET_STRATEGY, "")),
        poss_resend=maybe_sent_before(fields),
    )


# --- client side: encode reports -----------------------------------------------------------------
def _message(begin: str, msg_type: str, body: list[tuple[int, str]], poss_resend: bool = False) -> str:
    # BodyLength/CheckSum are placeholders: QuickFIX recomputes both when it sends.
    parts = [f"8={begin}", "9=0", f"35={msg_type}"]
    if poss_resend:
        parts.append(f"{POSS_RESEND}=Y")
    parts.extend(f"{tag}={value}" for tag, value in body if value != "")
    parts.append("10=000")
    return SOH.join(parts) + SOH


# Symbol(55) and Side(54) are required on every ExecutionReport (FIX 4.2 and 4.4), also on the answer to
# a request that named none (a mass status of all orders, a NewOrderSingle without a Symbol): "[N/A]" is
# FIX's placeholder for a required instrument that does not apply, and Side 7 (Undisclosed) claims no side.
NOT_APPLICABLE = "[N/A]"
SIDE_UNDISCLOSED = "7"


def encode_report(r: ExecutionReport, begin: str, copy: bool = False) -> str:
    exec_type = r.exec_type._value_
    body: list[tuple[int, str]] = [
        (ORDER_ID, r.order_id),
        (CL_ORD_ID, r.cl_ord_id),
        (ORIG_CL_ORD_ID, r.orig_cl_ord_id or ""),
        (EXEC_ID, r.exec_id),
        (ORD_STATUS, r.ord_status._value_),
        (ACCOUNT, r.account),
        (SYMBOL, r.symbol or NOT_APPLICABLE),
        (SIDE, r.side or SIDE_UNDISCLOSED),
        (ORDER_QTY, _fmt(r.order_qty)),
        (ORD_TYPE, r.ord_type._value_ if r.ord_type else ""),
        (PRICE, _fmt(r.price)),
        (TIF, r.time_in_force._value_ if r.time_in_force else ""),
        (LAST_QTY, _fmt(r.last_qty)),
        (LAST_PX, _fmt(r.last_px)),
        (LAST_MKT, r.last_mkt),
        (LEAVES_QTY, _fmt(r.leaves_qty)),
        (CUM_QTY, _fmt(r.cum_qty)),
        (AVG_PX, _fmt(r.avg_px)),
        (TRANSACT_TIME, utc_timestamp()),
        (TEXT, r.text),
        (STOP_PX, _fmt(r.stop_px)),
        (EXEC_REF_ID, r.exec_ref_id),
        (MASS_STATUS_REQ_ID, r.mass_status_req_id),
        (TOT_NUM_REPORTS, "" if r.tot_num_reports is None else str(r.tot_num_reports)),
        (LAST_RPT_REQUESTED, "Y" if r.last_rpt_requested else ""),
    ]
    rej = r.ord_rej_reason
    if begin == FIX42:
        exec_trans_type = "0"
        if r.exec_type is ExecType.TRADE:
            exec_type = ExecType.FILL.value if r.leaves_qty == 0 else ExecType.PARTIAL_FILL.value
        elif r.exec_type is ExecType.ORDER_STATUS:
            exec_trans_type, exec_type = "3", r.ord_status.value
        elif r.exec_type is ExecType.TRADE_CANCEL:
            exec_trans_type, exec_type = "1", ExecType.PARTIAL_FILL.value if r.cum_qty else ExecType.NEW.value
        elif r.exec_type is ExecType.TRADE_CORRECT:
            exec_trans_type = "2"
            exec_type = ExecType.FILL.value if r.leaves_qty == 0 else ExecType.PARTIAL_FILL.value
        body.append((EXEC_TRANS_TYPE, exec_trans_type))
        if rej is not None and int(rej) not in _FIX42_REJ:
            rej = OrdRejReason.BROKER_OPTION
    body.append((EXEC_TYPE, exec_type))
    restated = _restatement_reason(r.exec_restatement_reason, begin)
    if restated is not None:
        body.append((EXEC_RESTATEMENT_REASON, str(restated)))
    if copy:
        body.append((COPY_MSG_INDICATOR, "Y"))
    if rej is not None:
        body.append((ORD_REJ_REASON, str(int(rej))))
    return _message(begin, EXECUTION_REPORT, body, r.poss_resend)


def _restatement_reason(reason: int | None, begin: str) -> int | None:
    if reason is None:
        return None
    if begin == FIX42:
        return reason if reason in _FIX42_RESTATEMENT else None
    return reason if reason in _FIX44_RESTATEMENT else 99


def encode_cancel_reject(r: CancelReject, begin: str) -> str:
    reason = int(r.reason)
    if begin == FIX42 and reason not in _FIX42_CXL:
        reason = int(CxlRejReason.BROKER_OPTION)
    return _message(
        begin,
        CANCEL_REJECT,
        [
            (ORDER_ID, r.order_id),
            (CL_ORD_ID, r.cl_ord_id),
            (ORIG_CL_ORD_ID, r.orig_cl_ord_id),
            (ORD_STATUS, r.ord_status.value),
            (CXL_REJ_RESPONSE_TO, r.response_to.value),
            (CXL_REJ_REASON, str(reason)),
            (TEXT, r.text),
        ],
        r.poss_resend,
    )


def encode_mass_cancel_report(r: MassCancelReport, begin: str) -> str:
    return _message(
        begin,
        MASS_CANCEL_REPORT,
        [
            (CL_ORD_ID, r.cl_ord_id),
            (ORDER_ID, r.cl_ord_id),
            (MASS_CANCEL_REQUEST_TYPE, r.request_type),
            (MASS_CANCEL_RESPONSE, r.response),
            (MASS_CANCEL_REJECT_REASON, "" if r.reject_reason is None else str(r.reject_reason)),
            (TOTAL_AFFECTED_ORDERS, str(r.total_affected)),
            (TEXT, r.text),
        ],
        r.poss_resend,
    )


def encode_business_reject(begin: str, ref_seq_num: str, ref_msg_type: str, reason: int, text: str) -> str:
    return _message(
        begin,
        BUSINESS_REJECT,
        [(REF_SEQ_NUM, ref_seq_num), (REF_MSG_TYPE, ref_msg_type), (BUSINESS_REJECT_REASON, str(reason)), (TEXT, text)],
    )


# --- venue side (we are the initiator) ----------------------------------------------------------
def encode_venue_new(m: VenueNewOrder, begin: str) -> str:
    return _message(begin, NEW_ORDER_SINGLE, [(CL_ORD_ID, m.child_id), *_child_terms(m)])


def _child_terms(m: VenueNewOrder | VenueReplace) -> list[tuple[int, str]]:
    """A child's terms, as a new order and a replace both state them in full."""
    return [
        (HANDL_INST, "1"),
        (SYMBOL, m.symbol),
        (SIDE, m.side._value_),
        (ORDER_QTY, _fmt(m.qty)),
        (ORD_TYPE, m.ord_type._value_),
        (PRICE, _fmt(m.price) if m.ord_type is not OrdType.MARKET else ""),
        (TIF, m.time_in_force._value_),
        (MAX_FLOOR, _fmt(m.max_floor)),
        (TRANSACT_TIME, utc_timestamp()),
    ]


def encode_venue_status(m: VenueStatusRequest, begin: str) -> str:
    return _message(begin, STATUS_REQUEST, [(CL_ORD_ID, m.child_id), (SYMBOL, m.symbol), (SIDE, m.side.value)])


def encode_venue_cancel(m: VenueCancel, begin: str) -> str:
    return _message(
        begin,
        CANCEL_REQUEST,
        [
            (CL_ORD_ID, m.cancel_id),
            (ORIG_CL_ORD_ID, m.child_id),
            (SYMBOL, m.symbol),
            (SIDE, m.side._value_),
            (ORDER_QTY, _fmt(m.qty)),
            (TRANSACT_TIME, utc_timestamp()),
        ],
    )


def encode_venue_replace(m: VenueReplace, begin: str) -> str:
    """OrderCancelReplaceRequest: the child's full new terms (a venue keeps only what a replace restates)."""
    return _message(begin, REPLACE_REQUEST,
                    [(CL_ORD_ID, m.amend_id), (ORIG_CL_ORD_ID, m.orig_cl_ord_id), *_child_terms(m)])


def decode_venue(raw: str, venue: str) -> c.Command | None:
    fields = parse(raw)
    msg_type = fields.get(MSG_TYPE)
    if msg_type == EXECUTION_REPORT:
        exec_type_raw = fields.get(EXEC_TYPE, _ORDER_STATUS_REPORT)
        exec_type = _EXEC_TYPES.get(exec_type_raw) or ExecType(exec_type_raw)
        if fields.get(EXEC_TRANS_TYPE) == "3":  # FIX 4.2 status report
            exec_type = ExecType.ORDER_STATUS
        status_raw = fields.get(ORD_STATUS, _NEW)
        return c.VenueReport(
            venue=venue,
            cl_ord_id=fields.get(CL_ORD_ID, ""),
            orig_cl_ord_id=fields.get(ORIG_CL_ORD_ID),
            venue_order_id=fields.get(ORDER_ID, ""),
            exec_id=fields.get(EXEC_ID, ""),
            exec_type=exec_type,
            ord_status=_ORD_STATUSES.get(status_raw) or OrdStatus(status_raw),
            last_qty=_dec(fields, LAST_QTY, "LastQty") or ZERO,
            last_px=_dec(fields, LAST_PX, "LastPx") or ZERO,
            cum_qty=_dec(fields, CUM_QTY, "CumQty") or ZERO,
            leaves_qty=_dec(fields, LEAVES_QTY, "LeavesQty") or ZERO,
            avg_px=_dec(fields, AVG_PX, "AvgPx") or ZERO,
            exec_ref_id=fields.get(EXEC_REF_ID, ""),
            text=fields.get(TEXT, ""),
            exec_restatement_reason=_int(fields, EXEC_RESTATEMENT_REASON, "ExecRestatementReason"),
        )
    if msg_type == CANCEL_REJECT:
        status = fields.get(ORD_STATUS)
        return c.VenueCancelReject(
            venue=venue,
            cl_ord_id=fields.get(CL_ORD_ID, ""),
            orig_cl_ord_id=fields.get(ORIG_CL_ORD_ID, ""),
            ord_status=OrdStatus(status) if status else None,
            text=fields.get(TEXT, ""),
        )
    return None


# --- market data (repeating groups: built as strings, parsed with the data dictionary) ------------
def parse_list(raw: str) -> list[tuple[int, str]]:
    """Fields in wire order, repeats kept (for messages with repeating groups)."""
    out: list[tuple[int, str]] = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((int(tag), value))
    return out


def encode_md_request(req_id: str, symbols: list[str], depth: int, begin: str) -> str:
    body: list[tuple[int, str]] = [
        (MD_REQ_ID, req_id), (SUBSCRIPTION_REQUEST_TYPE, "1"), (MARKET_DEPTH, str(depth)), (MD_UPDATE_TYPE, "1"),
        (NO_MD_ENTRY_TYPES, "3"), (MD_ENTRY_TYPE, MD_BID), (MD_ENTRY_TYPE, MD_OFFER), (MD_ENTRY_TYPE, MD_TRADE),
        (NO_RELATED_SYM, str(len(symbols))),
    ]
    body.extend((SYMBOL, sym) for sym in symbols)
    return _message(begin, MD_REQUEST, body)


def decode_md_request(raw: str) -> tuple[str, list[str], int]:
    fields = parse_list(raw)
    req_id = next((v for t, v in fields if t == MD_REQ_ID), "")
    depth = int(next((v for t, v in fields if t == MARKET_DEPTH), "0") or 0)
    symbols = [v for t, v in fields if t == SYMBOL]
    return req_id, symbols, depth


Level = tuple[Decimal, Decimal]


# SecurityStatus (f): a venue's trading status per symbol. SecurityTradingStatus(326): 2 Trading halt,
# 18 Not available for trading (halted); 3 Resume, 17 Ready to trade (trading).
SECURITY_STATUS, SECURITY_STATUS_REQ_ID, SECURITY_TRADING_STATUS = "f", 324, 326
HALTED_STATUSES = frozenset({"2", "18"})


def encode_security_status(req_id: str, symbol: str, halted: bool, begin: str, text: str = "") -> str:
    body = [(SECURITY_STATUS_REQ_ID, req_id), (SYMBOL, symbol), (SECURITY_TRADING_STATUS, "2" if halted else "17")]
    if text:
        body.append((TEXT, text))
    return _message(begin, SECURITY_STATUS, body)


def decode_security_status(raw: str, venue: str) -> c.VenueSymbolStatus | None:
    fields = parse(raw)
    symbol, status = fields.get(SYMBOL), fields.get(SECURITY_TRADING_STATUS)
    if not symbol or status is None:
        return None
    return c.VenueSymbolStatus(venue, symbol, status in HALTED_STATUSES, fields.get(TEXT, ""))


def encode_md_snapshot(req_id: str, symbol: str, bids: list[Level], asks: list[Level], begin: str) -> str:
    body: list[tuple[int, str]] = [(MD_REQ_ID, req_id), (SYMBOL, symbol), (NO_MD_ENTRIES, str(len(bids) + len(asks)))]
    for kind, levels in ((MD_BID, bids), (MD_OFFER, asks)):
        for px, qty in levels:
            body += [(MD_ENTRY_TYPE, kind), (MD_ENTRY_PX, _fmt(px)), (MD_ENTRY_SIZE, _fmt(qty))]
    return _message(begin, MD_SNAPSHOT, body)


def encode_md_incremental(req_id: str, updates: list[tuple[str, str, str, Decimal, Decimal]], begin: str) -> str:
    """updates: (action 0 new / 1 change / 2 delete, entry type, symbol, price, size)."""
    body: list[tuple[int, str]] = [(MD_REQ_ID, req_id), (NO_MD_ENTRIES, str(len(updates)))]
    for action, kind, symbol, px, qty in updates:
        body += [(MD_UPDATE_ACTION, action), (MD_ENTRY_TYPE, kind), (SYMBOL, symbol), (MD_ENTRY_PX, _fmt(px)),
                 (MD_ENTRY_SIZE, _fmt(qty))]
    return _message(begin, MD_INCREMENTAL, body)


def decode_md(raw: str) -> tuple[str, str, list[dict[int, str]]]:
    """(MsgType, snapshot symbol or "", entries) of a W or X message; each entry a {tag: value} dict."""
    fields = parse_list(raw)
    msg_type = next((v for t, v in fields if t == MSG_TYPE), "")
    delimiter = MD_UPDATE_ACTION if msg_type == MD_INCREMENTAL else MD_ENTRY_TYPE
    entries: list[dict[int, str]] = []
    symbol = ""
    in_group = False
    for tag, value in fields:
        if tag == NO_MD_ENTRIES:
            in_group = True
            continue
        if not in_group:
            if tag == SYMBOL:
                symbol = value
            continue
        if tag == delimiter:
            entries.append({})
        if entries and tag in (MD_UPDATE_ACTION, MD_ENTRY_TYPE, SYMBOL, MD_ENTRY_PX, MD_ENTRY_SIZE):
            entries[-1][tag] = value
    return msg_type, symbol, entries


# --- session level (operator commands: fixoms sessions sequence-reset|resend|test-request) ---------
BEGIN_SEQ_NO, END_SEQ_NO, SENDER_COMP_ID, SENDING_TIME = 7, 16, 49, 52
NEW_SEQ_NO, TEST_REQ_ID, GAP_FILL_FLAG = 36, 112, 123
HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, SEQUENCE_RESET = "0", "1", "2", "4"

MSG_TYPE_NAMES = {
    HEARTBEAT: "Heartbeat", TEST_REQUEST: "TestRequest", RESEND_REQUEST: "ResendRequest", "3": "Reject",
    SEQUENCE_RESET: "SequenceReset", "5": "Logout", LOGON: "Logon", NEW_ORDER_SINGLE: "NewOrderSingle",
    CANCEL_REQUEST: "OrderCancelRequest", REPLACE_REQUEST: "OrderCancelReplaceRequest",
    STATUS_REQUEST: "OrderStatusRequest", EXECUTION_REPORT: "ExecutionReport", CANCEL_REJECT: "OrderCancelReject",
    BUSINESS_REJECT: "BusinessMessageReject", MASS_CANCEL_REQUEST: "OrderMassCancelRequest",
    MASS_CANCEL_REPORT: "OrderMassCancelReport", MASS_STATUS_REQUEST: "OrderMassStatusRequest",
    MD_REQUEST: "MarketDataRequest", MD_SNAPSHOT: "MarketDataSnapshotFullRefresh",
    MD_INCREMENTAL: "MarketDataIncrementalRefresh", MD_REQUEST_REJECT: "MarketDataRequestReject",
}


def encode_sequence_reset(begin: str, new_seq_no: int) -> str:
    """SequenceReset in Reset mode (GapFillFlag=N): the receiver takes NewSeqNo whatever our MsgSeqNum."""
    return _message(begin, SEQUENCE_RESET, [(GAP_FILL_FLAG, "N"), (NEW_SEQ_NO, str(new_seq_no))])


def encode_resend_request(begin: str, begin_seq_no: int, end_seq_no: int) -> str:
    """ResendRequest; EndSeqNo 0 means "through the last one you sent"."""
    return _message(begin, RESEND_REQUEST, [(BEGIN_SEQ_NO, str(begin_seq_no)), (END_SEQ_NO, str(end_seq_no))])


def encode_test_request(begin: str, test_req_id: str) -> str:
    return _message(begin, TEST_REQUEST, [(TEST_REQ_ID, test_req_id)])
