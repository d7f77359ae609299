# fixoms: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The modules setup.py compiles with mypyc (COMPILED there).
COMPILED_SRC := sor/book.py sor/crossing.py sor/router.py sor/strategies.py sor/venues.py fix_engine/codec.py
COMPILED_STAMP := $(VENV)/.compiled

.PHONY: install demo test lint pytest bench clean sanitize bench-c

# Creates the venv and installs the project (editable, with the C book built by cffi) and its
# dev tools. QuickFIX is built from source with native/quickfix/guard.patch (bounded framing, a
# first-message deadline, a threaded acceptor that stops cleanly): about 5 minutes on 2 cores the first
# time, then the wheel is reused from ~/.cache/fixoms/wheels.
#
# A compiled module's source changed: it is built again, alone.
install: $(STAMP) $(COMPILED_STAMP)
$(STAMP): pyproject.toml setup.py native/book.c native/book.h native/build_book.py native/quickfix/guard.patch native/quickfix/build.sh
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip setuptools wheel
	wheel=$$(bash native/quickfix/build.sh $(VPY)) && $(VPY) -m pip install --quiet "$$wheel"
	$(VPY) -m pip install --progress-bar off -e '.[dev]'
	touch $(STAMP) $(COMPILED_STAMP)

$(COMPILED_STAMP): $(COMPILED_SRC) | $(STAMP)
	$(VPY) setup.py --quiet build_ext --inplace
	touch $(COMPILED_STAMP)

demo: install
	$(VENV)/bin/fixoms demo

lint: install
	$(VENV)/bin/ruff check fix_engine oms sor venues native fixoms tests bench
	$(VENV)/bin/mypy fix_engine oms sor venues native fixoms
	$(VENV)/bin/lint-imports

pytest: install
	$(VPY) -m pytest -q -rfEs -p no:cacheprovider

test: lint pytest

bench: install
	$(VPY) bench/book_bench.py
	$(VPY) bench/risk_bench.py

clean:
	rm -rf $(VENV) build *.egg-info native/_book*.so *.so sor/*.so fix_engine/*.so var

# native/native.mk: `make sanitize` (ASan+UBSan build, equivalence test and 1M-op replay under it)
# and `make bench-c` (the C core alone), run with the venv's Python.
PY := $(VPY)
sanitize: install
include native/native.mk
