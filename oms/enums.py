"""FIX enumerations whose values are the wire values, so no mapping table can drift.

`OrdStatus("6") is OrdStatus.PENDING_CANCEL` gives the reverse lookup for free.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Side(str, Enum):
    BUY = "1"
    SELL = "2"
    SELL_SHORT = "5"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrdType(str, Enum):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"
    PEGGED = "P"


class TimeInForce(str, Enum):
    DAY = "0"
    GTC = "1"
    AT_THE_OPEN = "2"
    IOC = "3"
    FOK = "4"
    GTD = "6"
    AT_THE_CLOSE = "7"


class OrdStatus(str, Enum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class ExecType(str, Enum):
    NEW = "0"
    PARTIAL_FILL = "1"  # FIX 4.2 only
    FILL = "2"  # FIX 4.2 only
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    RESTATED = "D"
    PENDING_REPLACE = "E"
    TRADE = "F"
    TRADE_CORRECT = "G"
    TRADE_CANCEL = "H"
    ORDER_STATUS = "I"


class OrdRejReason(IntEnum):
    BROKER_OPTION = 0
    UNKNOWN_SYMBOL = 1
    EXCHANGE_CLOSED = 2
    ORDER_EXCEEDS_LIMIT = 3
    TOO_LATE_TO_ENTER = 4
    UNKNOWN_ORDER = 5
    DUPLICATE_ORDER = 6
    STALE_ORDER = 8
    UNSUPPORTED_ORDER_CHARACTERISTIC = 11
    INCORRECT_QUANTITY = 13
    UNKNOWN_ACCOUNT = 15
    OTHER = 99


class CxlRejReason(IntEnum):
    TOO_LATE_TO_CANCEL = 0
    UNKNOWN_ORDER = 1
    BROKER_OPTION = 2
    ALREADY_PENDING = 3
    DUPLICATE_CL_ORD_ID = 6
    OTHER = 99


class ExecRestatementReason(IntEnum):
    """ExecRestatementReason(378): why a report restates an order or cancels it unasked. A venue's value
    passes through as the int it sent (it may be one this list lacks); these are the ones we name."""

    GT_CORPORATE_ACTION = 0
    GT_RENEWAL = 1
    VERBAL_CHANGE = 2
    REPRICING = 3
    BROKER_OPTION = 4
    PARTIAL_DECLINE = 5
    CANCEL_ON_TRADING_HALT = 6
    CANCEL_ON_SYSTEM_FAILURE = 7
    MARKET_OPTION = 8
    CANCELED_NOT_BEST = 9
    WAREHOUSE_RECAP = 10
    OTHER = 99


class CxlRejResponseTo(str, Enum):
    CANCEL = "1"
    REPLACE = "2"


# Named groups: what a status means for the order's life.
TERMINAL: frozenset[OrdStatus] = frozenset(
    {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED, OrdStatus.DONE_FOR_DAY}
)
PENDING: frozenset[OrdStatus] = frozenset(
    {OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE}
)
OPEN: frozenset[OrdStatus] = frozenset(
    {
        OrdStatus.PENDING_NEW,
        OrdStatus.NEW,
        OrdStatus.PARTIALLY_FILLED,
        OrdStatus.PENDING_CANCEL,
        OrdStatus.PENDING_REPLACE,
        OrdStatus.STOPPED,
        OrdStatus.SUSPENDED,
    }
)

# FIX 4.4 Vol 4 Appendix D: when several statuses apply, the highest ranked one is reported.
PRECEDENCE: dict[OrdStatus, int] = {
    OrdStatus.PENDING_CANCEL: 11,
    OrdStatus.PENDING_REPLACE: 10,
    OrdStatus.DONE_FOR_DAY: 9,
    OrdStatus.CALCULATED: 8,
    OrdStatus.FILLED: 7,
    OrdStatus.STOPPED: 6,
    OrdStatus.SUSPENDED: 5,
    OrdStatus.CANCELED: 4,
    OrdStatus.EXPIRED: 4,
    OrdStatus.PARTIALLY_FILLED: 3,
    OrdStatus.NEW: 2,
    OrdStatus.REJECTED: 2,
    OrdStatus.PENDING_NEW: 2,
    OrdStatus.REPLACED: 1,
}


def reported_status(*statuses: OrdStatus | None) -> OrdStatus:
    """The OrdStatus to report when several apply (Appendix D precedence)."""
    present = [s for s in statuses if s is not None]
    return max(present, key=PRECEDENCE.__getitem__)
