"""Python face of the C order book (``native._book``, cffi API mode).

The hot paths avoid per-field cffi attribute access: single operations pass
scalars straight to C and decode the fixed-size event records with
``struct``; batches take operation records packed in one go (``struct`` via a
C-level ``starmap``, or any buffer such as a numpy structured array) and hand
back a lazy ``EventBatch`` over the C event buffer that creates ``Event``
objects only when asked.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from itertools import starmap
from typing import Any

from .reference import (
    EVENT_SIZE,
    EVENT_STRUCT,
    EVENT_WITH_INDEX_STRUCT,
    GTC,
    OP_SIZE,
    OP_STRUCT,
    STP_CANCEL_TAKER,
    Event,
    OpTuple,
    OrderInfo,
    validate_band,
)

if os.environ.get("FIXOMS_SANITIZE") == "1":
    from ._book_san import ffi, lib
else:
    from ._book import ffi, lib

if ffi.sizeof("fx_op") != OP_SIZE or ffi.sizeof("fx_event") != EVENT_SIZE:
    raise ImportError("native._book record layout does not match native.reference")


def _numpy() -> Any:
    """numpy, imported when first needed: only the array views use it (optional), and importing it cost
    every engine start ~80 ms (bench/restart_bench.py's target is a start in 1 s)."""
    try:
        import numpy
    except ImportError:
        raise RuntimeError("numpy is not installed") from None
    return numpy


@functools.cache
def _dtypes() -> tuple[Any, Any]:
    np = _numpy()
    op = np.dtype(
        [
            ("type", "u1"),
            ("side", "u1"),
            ("tif", "u1"),
            ("stp", "u1"),
            ("reserved", "<u4"),
            ("order_id", "<u8"),
            ("price", "<i8"),
            ("qty", "<i8"),
            ("display", "<i8"),
            ("owner", "<u8"),
        ]
    )
    event = np.dtype(
        [
            ("kind", "<u4"),
            ("op_index", "<u4"),
            ("order_id", "<u8"),
            ("maker_id", "<u8"),
            ("price", "<i8"),
            ("qty", "<i8"),
            ("leaves", "<i8"),
            ("maker_leaves", "<i8"),
            ("reason", "<u4"),
            ("reserved", "<u4"),
        ]
    )
    assert op.itemsize == OP_SIZE and event.itemsize == EVENT_SIZE
    return op, event


def __getattr__(name: str) -> Any:
    """OP_DTYPE and EVENT_DTYPE (numpy record types of the C layouts), made on first use."""
    if name == "OP_DTYPE":
        return _dtypes()[0]
    if name == "EVENT_DTYPE":
        return _dtypes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


FX_OK = lib.FX_OK
FX_ERR_EVENT_BUFFER = lib.FX_ERR_EVENT_BUFFER

# Bound once: attribute lookups on lib and Struct are measurable per call.
_fx_add1 = lib.fx_add1
_fx_add1x = lib.fx_add1x
_fx_market1 = lib.fx_market1
_fx_cancel1 = lib.fx_cancel1
_fx_replace1 = lib.fx_replace1
_fx_execute = lib.fx_execute
_unpack_from = EVENT_STRUCT.unpack_from
_iter_unpack = EVENT_STRUCT.iter_unpack
_pack_op = OP_STRUCT.pack
_event_new = Event._make
# Skips _make's length check: the record layout guarantees eight fields.
_tuple_new = tuple.__new__

_SINGLE_CAPACITY = 256


def ops_array(n: int) -> Any:
    """A zeroed numpy array of ``n`` operation records (requires numpy)."""
    return _numpy().zeros(n, dtype=_dtypes()[0])


class EventBatch(Sequence[Event]):
    """Events written by one batch call, decoded lazily from the C buffer.

    Indexing or iterating creates ``Event`` tuples on demand; ``array()``
    (numpy) and ``raw()`` expose the records without any per-event object.
    The view reads the book's reusable batch buffer, so it is only valid
    until the book's next batch call; using it afterwards raises
    ``RuntimeError`` (take ``to_list()`` or ``copy()`` to keep events).
    """

    __slots__ = ("_book", "_buf", "_n", "_gen")

    def __init__(self, book: Book, buf: Any, n: int, gen: int) -> None:
        self._book = book
        self._buf = buf
        self._n = n
        self._gen = gen

    def _mem(self) -> Any:
        if self._gen != self._book._gen:
            raise RuntimeError("EventBatch used after a later batch call on its book")
        return ffi.buffer(self._buf, self._n * EVENT_SIZE)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("event index out of range")
        return _event_new(_unpack_from(self._mem(), i * EVENT_SIZE))

    def __iter__(self) -> Iterator[Event]:
        return map(_event_new, _iter_unpack(self._mem()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (EventBatch, list, tuple)):
            return self.to_list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventBatch(n={self._n})"

    def to_list(self) -> list[Event]:
        return list(map(_event_new, _iter_unpack(self._mem())))

    def op_index(self, i: int) -> int:
        """Index, within the batch, of the operation that produced event ``i``."""
        if not 0 <= i < self._n:
            raise IndexError("event index out of range")
        return int(EVENT_WITH_INDEX_STRUCT.unpack_from(self._mem(), i * EVENT_SIZE)[1])

    def raw(self) -> memoryview:
        """The event records as a read-only byte view (valid until the next batch)."""
        return memoryview(self._mem()).toreadonly()

    def copy(self) -> bytes:
        """The event records as bytes that outlive the view."""
        return bytes(self._mem())

    def array(self) -> Any:
        """Zero-copy numpy structured array (``EVENT_DTYPE``) over the records."""
        return _numpy().frombuffer(self._mem(), dtype=_dtypes()[1])


class Book:
    """One symbol's order book, backed by the C core.

    Threading: a book has exactly one owning thread.  cffi releases the GIL
    around every C call, so two threads calling into the same book would race
    on its memory; confine each book to one thread (one book per symbol makes
    sharding by symbol natural).

    Prices are integer ticks within ``[min_price, max_price]``; quantities
    are integers in ``1..max_qty`` (``max_qty = (2**63 - 1) // max_orders``);
    ids are unsigned 64-bit.  All memory is allocated here, once.
    """

    __slots__ = (
        "_b",
        "_ev",
        "_evmem",
        "_evcap",
        "_bev",
        "_bcap",
        "_gen",
        "_next",
        "_nev",
        "_info",
        "min_price",
        "max_price",
        "max_orders",
        "max_qty",
        "__weakref__",
    )

    def __init__(self, min_price: int, max_price: int, max_orders: int) -> None:
        validate_band(min_price, max_price, max_orders)
        ptr = lib.fx_book_new(min_price, max_price, max_orders)
        if ptr == ffi.NULL:
            raise MemoryError("cannot allocate the order book")
        self._b = ffi.gc(ptr, lib.fx_book_free)
        self.min_price = min_price
        self.max_price = max_price
        self.max_orders = max_orders
        self.max_qty = int(lib.fx_max_qty(self._b))
        self._set_single_capacity(_SINGLE_CAPACITY)
        self._bcap = 0
        self._bev: Any = ffi.NULL
        self._gen = 0
        self._next = ffi.new("size_t *")
        self._nev = ffi.new("size_t *")
        self._info = ffi.new("fx_order_info *")

    def _set_single_capacity(self, cap: int) -> None:
        self._ev = ffi.new("fx_event[]", cap)
        self._evmem = ffi.buffer(self._ev)
        self._evcap = cap
        lib.fx_attach_events(self._b, self._ev, cap)

    def _single_events(self, n: int) -> list[Event]:
        mem = self._evmem
        return [_tuple_new(Event, _unpack_from(mem, off)) for off in range(0, n * EVENT_SIZE, EVENT_SIZE)]

    def _retry(self, call: Any, *args: Any) -> list[Event]:
        # The operation was refused untouched; grow until its events fit.
        n = -1
        while n < 0:
            self._set_single_capacity(self._evcap * 4)
            n = call(self._b, *args)
        return self._single_events(n)

    # -- single operations -------------------------------------------------
    # Hot paths: scalars straight to C, events written to the attached buffer,
    # one struct unpack per event.

    def add(
        self,
        order_id: int,
        side: int,
        price: int,
        qty: int,
        tif: int = GTC,
        owner: int = 0,
        display: int = 0,
        stp: int = STP_CANCEL_TAKER,
    ) -> list[Event]:
        if owner or display or stp != STP_CANCEL_TAKER:
            n = _fx_add1x(self._b, order_id, side, price, qty, tif, owner, display, stp)
            if n < 0:
                return self._retry(_fx_add1x, order_id, side, price, qty, tif, owner, display, stp)
        else:
            n = _fx_add1(self._b, order_id, side, price, qty, tif)
            if n < 0:
                return self._retry(_fx_add1, order_id, side, price, qty, tif)
        if n == 1:
            return [_tuple_new(Event, _unpack_from(self._evmem))]
        return self._single_events(n)

    def market(
        self, order_id: int, side: int, qty: int, owner: int = 0, stp: int = STP_CANCEL_TAKER
    ) -> list[Event]:
        n = _fx_market1(self._b, order_id, side, qty, owner, stp)
        if n < 0:
            return self._retry(_fx_market1, order_id, side, qty, owner, stp)
        return self._single_events(n)

    def cancel(self, order_id: int) -> list[Event]:
        # Exactly one event, and the attached buffer is never empty.
        _fx_cancel1(self._b, order_id)
        return [_tuple_new(Event, _unpack_from(self._evmem))]

    def replace(self, order_id: int, price: int, qty: int) -> list[Event]:
        n = _fx_replace1(self._b, order_id, price, qty)
        if n == 1:
            return [_tuple_new(Event, _unpack_from(self._evmem))]
        if n < 0:
            return self._retry(_fx_replace1, order_id, price, qty)
        return self._single_events(n)

    # -- batches -----------------------------------------------------------

    def execute(self, ops: Sequence[OpTuple]) -> EventBatch:
        """Pack operation tuples (see ``op_add`` & co.) and run them as one batch."""
        return self.execute_packed(b"".join(starmap(_pack_op, ops)), len(ops))

    def execute_packed(self, ops_buffer: Any, n_ops: int | None = None) -> EventBatch:
        """Run ``n_ops`` pre-packed operation records (bytes, bytearray, numpy
        ``OP_DTYPE`` array, any contiguous buffer) as one batch.

        The returned view is valid until the next batch call on this book.
        """
        ops = ffi.from_buffer("fx_op[]", ops_buffer)
        if n_ops is None:
            n_ops = len(ops)
        elif not 0 <= n_ops <= len(ops):
            raise ValueError(f"buffer holds {len(ops)} operations, not {n_ops}")
        if self._bcap < 2 * n_ops + 64:
            self._grow_batch(2 * n_ops + 64, 0)
        first = 0
        nev = 0
        while True:
            status = _fx_execute(
                self._b, ops, first, n_ops, self._bev + nev, self._bcap - nev, self._next, self._nev
            )
            nev += self._nev[0]
            if status == FX_OK:
                break
            if status != FX_ERR_EVENT_BUFFER:
                raise RuntimeError(f"fx_execute failed with status {status}")
            first = self._next[0]
            self._grow_batch(self._bcap * 2, nev)
        self._gen += 1
        return EventBatch(self, self._bev, nev, self._gen)

    def reserve_events(self, n: int) -> None:
        """Pre-size the reusable batch event buffer (it otherwise grows on demand)."""
        if n > self._bcap:
            self._grow_batch(n, 0)

    def _grow_batch(self, cap: int, keep: int) -> None:
        buf = ffi.new("fx_event[]", cap)
        if keep:
            ffi.memmove(buf, self._bev, keep * EVENT_SIZE)
        self._bev = buf
        self._bcap = cap

    # -- queries -----------------------------------------------------------

    def _best(self, side: int) -> tuple[int, int] | None:
        out = ffi.new("int64_t[2]")
        if not lib.fx_best(self._b, side, out, out + 1):
            return None
        return (int(out[0]), int(out[1]))

    def best_bid(self) -> tuple[int, int] | None:
        """(price, visible quantity at that level) or None; iceberg reserve excluded."""
        return self._best(0)

    def best_ask(self) -> tuple[int, int] | None:
        """(price, visible quantity at that level) or None; iceberg reserve excluded."""
        return self._best(1)

    def depth(self, side: int, levels: int) -> list[tuple[int, int, int]]:
        """Up to ``levels`` (price, visible qty, order count), best first."""
        if side not in (0, 1):
            raise ValueError("side must be BUY or SELL")
        if levels <= 0:
            return []
        levels = min(levels, self.max_price - self.min_price + 1)
        out = ffi.new("int64_t[]", 3 * levels)
        n = lib.fx_depth(self._b, side, levels, out)
        flat = ffi.unpack(out, 3 * n)
        return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, 3 * n, 3)]

    def get(self, order_id: int) -> OrderInfo | None:
        info = self._info
        if not lib.fx_get(self._b, order_id, info):
            return None
        return OrderInfo(
            int(info.order_id),
            int(info.side),
            int(info.price),
            int(info.leaves),
            int(info.visible),
            int(info.owner),
        )

    def level_orders(self, side: int, price: int) -> list[int]:
        """Ids resting at ``price`` on ``side`` in time priority order."""
        if side not in (0, 1):
            raise ValueError("side must be BUY or SELL")
        n = lib.fx_level_orders(self._b, side, price, ffi.NULL, 0)
        if n == 0:
            return []
        ids = ffi.new("uint64_t[]", n)
        lib.fx_level_orders(self._b, side, price, ids, n)
        return list(ffi.unpack(ids, n))

    def order_count(self) -> int:
        return int(lib.fx_order_count(self._b))

    def __len__(self) -> int:
        return int(lib.fx_order_count(self._b))

    def check(self) -> None:
        """Full invariant check; raises AssertionError naming the broken invariant."""
        msg = ffi.new("char[]", 512)
        if lib.fx_check(self._b, msg, 512):
            raise AssertionError(ffi.string(msg).decode("utf-8", "replace"))

    # -- low-level access for callers that manage their own buffers ----------

    def execute_into(
        self, ops_buffer: Any, n_ops: int, events_buffer: Any, first: int = 0
    ) -> tuple[int, int, int]:
        """Run ops into a caller-provided event buffer (any writable buffer of
        64-byte records).  Returns (status, next_op, n_events); status
        ``FX_ERR_EVENT_BUFFER`` means the operation at ``next_op`` did not fit
        and was not applied."""
        ops = ffi.from_buffer("fx_op[]", ops_buffer)
        ev = ffi.from_buffer("fx_event[]", events_buffer, require_writable=True)
        if not 0 <= first <= n_ops <= len(ops):
            raise ValueError("operation range outside the buffer")
        status = _fx_execute(self._b, ops, first, n_ops, ev, len(ev), self._next, self._nev)
        return int(status), int(self._next[0]), int(self._nev[0])
