"""A dict that reads what it does not hold: the engine keeps working orders in memory and leaves finished
ones in the journal until something names them (a restart then reads only the working ones)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LoadingDict(dict[K, V]):
    """`d[key]`, `d.get(key)` and `key in d` fall back to `load(key)` for a key not held; `load` returns
    the value (it may also file it and related entries wherever it likes) or None for "there is none".
    A loaded value is kept. Iteration, `len`, `values()` and `items()` see only what is held, which is
    what the engine's scans over open orders want; a miss on a lookup costs a journal read, so callers
    on the hot path look up keys that are expected to exist (or accept the read).

    Only the thread that owns the engine's state may use it: `load` reads the journal synchronously."""

    __slots__ = ("_load",)

    def __init__(self, load: Callable[[K], V | None]) -> None:
        super().__init__()
        self._load = load

    def __missing__(self, key: K) -> V:
        value = self._load(key)
        if value is None:
            raise KeyError(key)
        dict.__setitem__(self, key, value)
        return value

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...

    @overload
    def get(self, key: K, default: V | D, /) -> V | D: ...

    def get(self, key: K, default: V | D | None = None, /) -> V | D | None:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        value = self._load(key)
        if value is None:
            return default
        dict.__setitem__(self, key, value)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self.get(key) is not None  # type: ignore[arg-type]
