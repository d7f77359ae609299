"""Native order book: a C matching core (``Book``) and its pure-Python oracle
(``ReferenceBook``), which implement the same API and emit identical events.

Build the extension in place with ``python native/build_book.py``.  The
semantics are specified in docs/native-book.md.  This package imports
nothing from the rest of the project.
"""

from __future__ import annotations

from typing import Any

from .reference import (
    BUY,
    DAY,
    EV_CANCELED,
    EV_FILL,
    EV_REJECTED,
    EV_REPLACED,
    EV_RESTED,
    EVENT_KIND_NAMES,
    EVENT_SIZE,
    EVENT_STRUCT,
    FOK,
    GTC,
    IOC,
    MAX_ICEBERG_SLICES,
    OP_ADD,
    OP_CANCEL,
    OP_MARKET,
    OP_REPLACE,
    OP_SIZE,
    OP_STRUCT,
    R_BAD_PARAM,
    R_BAD_QTY,
    R_BOOK_FULL,
    R_DUPLICATE_ID,
    R_FOK_UNFILLABLE,
    R_IOC_UNFILLED,
    R_NONE,
    R_PRICE_OUT_OF_BAND,
    R_SELF_MATCH,
    R_UNKNOWN_ID,
    R_USER,
    REASON_NAMES,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_MAKER,
    STP_CANCEL_TAKER,
    STP_NONE,
    Event,
    EventList,
    OpTuple,
    OrderInfo,
    ReferenceBook,
    format_event,
    op_add,
    op_cancel,
    op_market,
    op_replace,
    pack_ops,
    unpack_ops,
)

_NATIVE_NAMES = ("Book", "EventBatch", "OP_DTYPE", "EVENT_DTYPE", "ops_array")

try:
    from .book import Book, EventBatch, ops_array
except ImportError as _exc:  # extension not built yet: keep the pure-Python half usable
    _native_error: ImportError | None = _exc
else:
    _native_error = None


def __getattr__(name: str) -> Any:
    if name in ("OP_DTYPE", "EVENT_DTYPE") and _native_error is None:
        from . import book  # numpy's record types, made on first use (native.book)

        return getattr(book, name)
    if name in _NATIVE_NAMES and _native_error is not None:
        raise ImportError(
            f"native.{name} needs the compiled extension native._book "
            f"(build it with `python native/build_book.py`): {_native_error}"
        ) from _native_error
    raise AttributeError(f"module 'native' has no attribute {name!r}")


__all__ = [
    "BUY",
    "DAY",
    "EVENT_DTYPE",
    "EVENT_KIND_NAMES",
    "EVENT_SIZE",
    "EVENT_STRUCT",
    "EV_CANCELED",
    "EV_FILL",
    "EV_REJECTED",
    "EV_REPLACED",
    "EV_RESTED",
    "FOK",
    "GTC",
    "IOC",
    "MAX_ICEBERG_SLICES",
    "OP_ADD",
    "OP_CANCEL",
    "OP_DTYPE",
    "OP_MARKET",
    "OP_REPLACE",
    "OP_SIZE",
    "OP_STRUCT",
    "REASON_NAMES",
    "R_BAD_PARAM",
    "R_BAD_QTY",
    "R_BOOK_FULL",
    "R_DUPLICATE_ID",
    "R_FOK_UNFILLABLE",
    "R_IOC_UNFILLED",
    "R_NONE",
    "R_PRICE_OUT_OF_BAND",
    "R_SELF_MATCH",
    "R_UNKNOWN_ID",
    "R_USER",
    "SELL",
    "STP_CANCEL_BOTH",
    "STP_CANCEL_MAKER",
    "STP_CANCEL_TAKER",
    "STP_NONE",
    "Book",
    "Event",
    "EventBatch",
    "EventList",
    "OpTuple",
    "OrderInfo",
    "ReferenceBook",
    "format_event",
    "op_add",
    "op_cancel",
    "op_market",
    "op_replace",
    "ops_array",
    "pack_ops",
    "unpack_ops",
]
