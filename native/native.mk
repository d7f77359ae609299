# Native order book targets; the main Makefile includes this file.
#
#   make sanitize   build native._book_san with ASan+UBSan and run the
#                   equivalence test and the 1M-operation replay under it
#   make bench-c    the C core alone, without Python
#
# PY is the Python that runs the build and the tests (it needs cffi, pytest
# and hypothesis).  The sanitized module is a separate extension, so the
# optimized native._book is never replaced; native.book loads the sanitized
# one when FIXOMS_SANITIZE=1.

PY ?= python3
CC ?= cc
NATIVE_BUILD ?= build/native-bench
NATIVE_LIBASAN = $(shell $(CC) -print-file-name=libasan.so)
NATIVE_SAN_ENV = FIXOMS_SANITIZE=1 \
	LD_PRELOAD=$(NATIVE_LIBASAN) \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	PYTHONMALLOC=malloc

.PHONY: sanitize bench-c native-build

native-build:
	$(PY) native/build_book.py

sanitize:
	FIXOMS_SANITIZE=1 $(PY) native/build_book.py
	$(NATIVE_SAN_ENV) FIXOMS_REPLAY_OPS=1000000 $(PY) -m pytest -q -p no:cacheprovider \
		tests/native/test_book_equivalence.py tests/native/test_replay.py tests/native/test_book_basic.py

$(NATIVE_BUILD)/bench_c: native/bench_c.c native/book.c native/book.h
	@mkdir -p $(NATIVE_BUILD)
	$(CC) -O3 -std=c11 -Wall -Wextra -Inative -o $@ native/bench_c.c native/book.c -lm

bench-c: $(NATIVE_BUILD)/bench_c
	./$(NATIVE_BUILD)/bench_c
