"""The compiled modules (setup.py, mypyc): a source edited after its module was compiled is refused with
the command to run, not silently ignored; FIXOMS_PURE_PYTHON=1 runs the sources instead; the installed
checkout runs the compiled ones."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oms.compiled import GROUP, StaleCompiledModule, environment, require_fresh
from tests.conftest import ROOT

SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def package(tmp_path: Path, checkout: bool) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    if checkout:
        (tmp_path / "setup.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("X = 1\n")
    (pkg / f"mod{SUFFIX}").write_bytes(b"")
    return pkg


def older(path: Path, than: Path) -> None:
    t = than.stat().st_mtime
    os.utime(path, (t - 10, t - 10))


def test_a_source_changed_after_its_module_was_compiled_is_refused(tmp_path: Path) -> None:
    pkg = package(tmp_path, checkout=True)
    require_fresh(str(pkg / "__init__.py"))  # compiled after its source: fine
    older(pkg / f"mod{SUFFIX}", pkg / "mod.py")
    with pytest.raises(StaleCompiledModule, match=r"mod\.py changed after it was compiled: run `make install`"):
        require_fresh(str(pkg / "__init__.py"))


def test_a_rebuild_that_left_a_shim_as_it_was_is_fresh(tmp_path: Path) -> None:
    """mypyc puts the code in one library at the top; a module's own file may keep its old time."""
    pkg = package(tmp_path, checkout=True)
    older(pkg / f"mod{SUFFIX}", pkg / "mod.py")
    (tmp_path / f"fixoms_compiled__mypyc{SUFFIX}").write_bytes(b"")
    require_fresh(str(pkg / "__init__.py"))


def test_the_guard_looks_for_the_library_setup_py_builds() -> None:
    assert f'GROUP = "{GROUP}"' in (ROOT / "setup.py").read_text()


def test_make_rebuilds_what_setup_py_compiles() -> None:
    """The Makefile's COMPILED_SRC (what a change of makes `make install` build again) is setup.py's list."""
    setup = ast.parse((ROOT / "setup.py").read_text())
    compiled = next(ast.literal_eval(node.value) for node in setup.body if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets))
    make = re.search(r"^COMPILED_SRC := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert make is not None and make.group(1).split() == compiled


def test_an_installed_copy_is_not_checked(tmp_path: Path) -> None:
    pkg = package(tmp_path, checkout=False)
    older(pkg / f"mod{SUFFIX}", pkg / "mod.py")
    require_fresh(str(pkg / "__init__.py"))


def where(pure: bool) -> list[str]:
    """The files a fresh process imports two compiled modules from."""
    code = "import sor.strategies, sor.router, fix_engine.codec as c; print(sor.strategies.__file__); print(c.__file__)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment(pure), check=True, capture_output=True,
                          text=True).stdout.split()


def test_pure_python_runs_the_sources_and_the_checkout_runs_the_compiled_modules() -> None:
    assert all(f.endswith(".py") for f in where(pure=True))
    if not list((ROOT / "sor").glob("strategies.cpython-*.so")):
        pytest.skip("installed with FIXOMS_PURE_PYTHON=1: nothing compiled")
    assert all(f.endswith(".so") for f in where(pure=False))
