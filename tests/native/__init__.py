"""Tests of the native book. `load_book` imports the C wrapper, building the extension in place first
if this checkout has not built it yet."""

from __future__ import annotations

import importlib
from types import ModuleType


def load_book() -> ModuleType:
    try:
        return importlib.import_module("native.book")
    except ImportError:
        from native.build_book import build_in_place

        build_in_place()
        importlib.invalidate_caches()
        return importlib.import_module("native.book")
