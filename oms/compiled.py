"""Compiled modules: a guard against running stale ones, and a switch to run their sources instead.

Some modules are compiled to C by mypyc at install time (setup.py, COMPILED). Python imports a compiled
module in preference to its source, so a source edited after `make install` would silently not run.
`require_fresh` (called by each package that has compiled modules, before any of them is imported)
refuses that with one line saying what to do. In an installed copy (no setup.py beside the packages)
there is nothing to edit, and nothing is checked.

FIXOMS_PURE_PYTHON=1 in the environment runs the sources instead of the compiled modules (the same code,
interpreted): what `bench/e2e.py --pure-ab` compares against.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# setup.py's name for the library of compiled code the modules' shims load (GROUP there: setup.py cannot
# import this package, whose __init__ runs the guard below)
GROUP = "fixoms_compiled"


PURE_PYTHON = "FIXOMS_PURE_PYTHON"


def environment(pure: bool) -> dict[str, str]:
    """This process's environment for a child that runs the sources (`pure`) or the compiled modules."""
    env = {k: v for k, v in os.environ.items() if k != PURE_PYTHON}
    if pure:
        env[PURE_PYTHON] = "1"
    return env


class StaleCompiledModule(ImportError):
    pass


def require_fresh(package_init: str) -> None:
    """For the package of `package_init` (its __init__.py): with FIXOMS_PURE_PYTHON set, import its
    modules from their sources from now on; else raise StaleCompiledModule if one of them is compiled
    and its .py changed after that."""
    package = Path(package_init).parent
    if os.environ.get(PURE_PYTHON):
        sys.meta_path.insert(0, _SourcesFirst(package))
        return
    if not (package.parent / "setup.py").exists():
        return
    # Each compiled module is a small shim; the code is in the group's library at the top of the checkout.
    # A rebuild may leave a shim as it was (same file, old time): the newer of the two counts.
    group = [p.stat().st_mtime for p in package.parent.glob(f"{GROUP}__mypyc.*.so")]
    for compiled in package.glob("*.cpython-*.so"):
        source = compiled.with_name(compiled.name.split(".", 1)[0] + ".py")
        built = max([compiled.stat().st_mtime, *group])
        if source.exists() and source.stat().st_mtime > built:
            raise StaleCompiledModule(f"{source} changed after it was compiled: run `make install` to build it again "
                                      "(or set FIXOMS_PURE_PYTHON=1 to run the sources)")


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the package's modules as source files, ahead of the compiled ones."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.prefix = package.name + "."

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix) or "." in fullname[len(self.prefix):]:
            return None
        source = self.package / (fullname[len(self.prefix):] + ".py")
        return importlib.util.spec_from_file_location(fullname, source) if source.exists() else None
