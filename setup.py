"""Builds the native parts during `pip install`: the cffi C book (native._book) and the hot-path modules
compiled to C by mypyc (COMPILED); everything else lives in pyproject.toml.

FIXOMS_PURE_PYTHON=1 at install time builds no mypyc module: every module then runs as Python (the same
code: the compiled modules are built from these sources, which stay the ones to read and edit).
"""

import os

from setuptools import setup

# The routing package and the FIX codec: pure functions and small classes over Decimal and str, with the
# engine's per-order Python time in them (docs/performance.md, eleventh session). A compiled module older
# than its source is refused at import (oms.compiled), and `make install` rebuilds when one changes.
COMPILED = ["sor/book.py", "sor/crossing.py", "sor/router.py", "sor/strategies.py", "sor/venues.py",
            "fix_engine/codec.py"]

# The library the compiled modules' code goes into (oms/compiled.py checks it: the same name there).
GROUP = "fixoms_compiled"

ext_modules = []
if not os.environ.get("FIXOMS_PURE_PYTHON"):
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED, group_name=GROUP, opt_level="3")

setup(cffi_modules=["native/build_book.py:ffibuilder"], ext_modules=ext_modules)
