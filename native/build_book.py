"""cffi (API mode) build of the native order book.

setuptools imports ``ffibuilder`` from here (``cffi_modules=
["native/build_book.py:ffibuilder"]``) and runs it from the repository root,
so every path in it is relative to that root.  Running this file directly
builds the extension in place as ``native/_book*.so``.

``FIXOMS_SANITIZE=1`` builds with AddressSanitizer and
UndefinedBehaviorSanitizer instead, as the separate module
``native._book_san`` so that the optimized module is never replaced by one
that can only be loaded under ``LD_PRELOAD=libasan.so`` (native.book picks
the sanitized module when the same variable is set at import time).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = os.environ.get("FIXOMS_SANITIZE") == "1"
MODULE = "native._book_san" if SANITIZE else "native._book"

# -fno-strict-aliasing is not needed by book.c; -fvisibility keeps the C core
# symbols private to the extension so two builds never interpose on each other.
BASE_ARGS = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra"]
OPT_ARGS = ["-O3"]
SANITIZE_ARGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-O1",
    "-g",
]


def _cdef_text(header: Path) -> str:
    text = header.read_text()
    begin = text.index("/* CFFI_BEGIN */") + len("/* CFFI_BEGIN */")
    end = text.index("/* CFFI_END */")
    return text[begin:end]


def make_builder(root: Path | None = None, sanitize: bool = SANITIZE) -> FFI:
    """An FFI builder; paths are relative to the repository root unless ``root`` is given."""
    base = root if root is not None else Path(".")
    header = (root if root is not None else ROOT) / "native" / "book.h"
    builder = FFI()
    builder.cdef(_cdef_text(header))
    extra = SANITIZE_ARGS if sanitize else OPT_ARGS
    builder.set_source(
        "native._book_san" if sanitize else "native._book",
        '#include "book.h"',
        sources=[str(base / "native" / "book.c")],
        include_dirs=[str(base / "native")],
        extra_compile_args=[*BASE_ARGS, *extra],
        extra_link_args=list(SANITIZE_ARGS) if sanitize else [],
    )
    return builder


ffibuilder = make_builder()


def build_in_place(sanitize: bool = SANITIZE, verbose: bool = False) -> Path:
    """Compile into build/ and copy the extension next to this file."""
    tmp = ROOT / "build" / ("native-cffi-san" if sanitize else "native-cffi")
    # A stale object from the other flavour must never be linked in.
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    builder = make_builder(ROOT, sanitize)
    built = Path(builder.compile(tmpdir=str(tmp), verbose=verbose))
    target = ROOT / "native" / built.name
    # A module built under another suffix (pip/setuptools make *.abi3.so)
    # would otherwise shadow or be shadowed by this one.
    stem = built.name.split(".")[0]
    for stale in (ROOT / "native").glob(f"{stem}.*"):
        if stale.suffix in (".so", ".pyd") and stale.name != built.name:
            stale.unlink()
    shutil.copy2(built, target)
    return target


if __name__ == "__main__":
    print(build_in_place(verbose="-v" in sys.argv[1:]))
