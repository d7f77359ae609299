#!/usr/bin/env bash
# Builds quickfix 1.16.0 with fixoms' guard patch (guard.patch) as a wheel, once: the wheel is kept
# in $FIXOMS_WHEEL_CACHE (default ~/.cache/fixoms/wheels) and reused by every checkout on the machine.
#
# Why: QuickFIX 1.16's acceptor trusts its peer's framing. Unpatched, a frame with a non-numeric
# BodyLength makes the session process the previous message again; a connection that never completes
# its first message is held for ever (a thread each); a frame claiming a huge BodyLength is buffered
# in full before any logon. The patch drops unparseable frames, bounds a frame to 4 MB and its header
# to 4 KB, and disconnects a peer without a complete first message after 10 s (docs/operations.md).
#
# And the ThreadedSocketAcceptor's stop: upstream closes each connection's socket on the stopping thread
# while that connection's thread still uses the descriptor and closes it again when it wakes up; the
# number may meanwhile belong to another socket or file of the process, which the stale close shuts
# down. A stop() that comes before start()'s thread has run leaves the listening socket open and its
# thread unjoined. Now descriptors are closed once, by their owner, and stop() joins every thread.
#
# And the hot path without Python on QuickFIX's threads (session settings, set by fix_engine/settings.py
# with_inbox): AppInboxFd=N writes each validated application message, and each logon and logout, to
# descriptor N (C++/AppInbox.h) - from the session's thread when the socket takes it at once, else through
# a queue and a thread of the session's - where the engine thread reads them, instead of calling fromApp,
# which had to take the GIL with the session's lock held;
# AppOutboxFd=N is the other direction: the engine thread writes a batch's messages to descriptor N in
# one system call and a thread of the session's sends them (C++/AppOutbox.h), so QuickFIX's send work -
# parsing, the store (for PostgreSQL a round trip each), the log, the socket - is off the engine thread;
# NativeMessageLog=Y gives the session a C++ FileLog of its own for messages and events (the Python
# LogFactory's log then sees the events only); CallToApp=N skips the toApp callback we do not use.
# SocketAcceptFd=N makes the ThreadedSocketAcceptor take over a socket the program already listens on
# for that port (an HA standby binds its client port early: fixoms/held_ports.py).
#
# And, where libpq's headers are there (`pg_config --includedir`), QuickFIX's own PostgreSQLStore
# (HAVE_POSTGRESQL, linked with -lpq). A departure from design.md section 3 ("no SQL stores"): a hot
# standby on another host must continue each FIX session's sequence numbers and answer resend requests
# for what the primary sent, and the journal's PostgreSQL is the one store both can reach. Only HA mode
# uses it (docs/operations.md, Failover); a single engine keeps FileStore. Without libpq the build goes
# on without it and `fixoms run --standby` refuses to start (fix_engine/settings.py quickfix_pg_store).
# The store is patched to write a message sent and the next sender number in one statement (upstream: two
# round trips), and the next number received lazily (at most every 100 ms, and with every send) and never
# past what the engine says its journal holds (set(0, N)): stored too low, it only makes a standby that
# takes over ask for a resend, which brings back what the old primary received but had not journaled
# (C++/PostgreSQLStore.cpp). Session::getStore returns a MessageStore proxy (QuickfixPython.cpp).
#
# Usage: native/quickfix/build.sh PYTHON   -> prints the wheel's path
set -euo pipefail
PY=${1:?usage: build.sh PYTHON}
# absolute (the build runs in another directory), but not resolved: a venv's python is a symlink
case "$PY" in /*) ;; */*) PY="$(pwd)/$PY" ;; *) PY=$(command -v "$PY") ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=1.16.0
# fixoms2: the settings AppInboxFd, NativeMessageLog and CallToApp (fix_engine/settings.py quickfix_native_edge);
# fixoms3: built with the PostgreSQL store where libpq is there (then ".pg" follows: quickfix_pg_store)
# fixoms4: the session setting AppOutboxFd (fix_engine/settings.py quickfix_outbox)
# fixoms5: the session setting SocketAcceptFd (fix_engine/settings.py quickfix_accept_fd)
LOCAL=fixoms5
PG_INCLUDE=$(pg_config --includedir 2>/dev/null || true)
if [ -n "$PG_INCLUDE" ] && [ -f "$PG_INCLUDE/libpq-fe.h" ]; then
    LOCAL=$LOCAL.pg
    # (--include-dirs replaces setup.py's own list: C++ and swig are named again)
    PG_ARGS=(--define HAVE_POSTGRESQL --include-dirs "C++:swig:$PG_INCLUDE" --libraries pq)
else
    echo "libpq headers not found (pg_config --includedir): building QuickFIX without its PostgreSQL store; HA mode will refuse to start" >&2
    PG_ARGS=()
fi
CACHE=${FIXOMS_WHEEL_CACHE:-$HOME/.cache/fixoms/wheels}
mkdir -p "$CACHE"
# The patch's hash is part of the name: a changed patch builds a new wheel.
TAG=$(sha256sum "$HERE/guard.patch" | cut -c1-12)
DONE="$CACHE/quickfix-$VERSION+$LOCAL.$TAG.path"
if [ -f "$DONE" ] && [ -f "$(cat "$DONE")" ]; then
    cat "$DONE"
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "building quickfix $VERSION with the fixoms guard patch (about 5 minutes on 2 cores, once)" >&2
"$PY" -m pip download --quiet --no-binary :all: --no-deps -d "$WORK" "quickfix==$VERSION" >&2
tar xzf "$WORK/quickfix-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/quickfix-$VERSION"
patch --quiet -p2 -d "$SRC" < "$HERE/guard.patch"
sed -i "s/^version = $VERSION\$/version = $VERSION+$LOCAL.$TAG/" "$SRC/setup.cfg"
sed -i "s/^Version: $VERSION\$/Version: $VERSION+$LOCAL.$TAG/" "$SRC/PKG-INFO"
# Both cores for the compile (setuptools' build_ext -j); no debug info, which only slows it down.
(cd "$SRC" && CFLAGS="-g0" "$PY" setup.py --quiet build_ext -j 2 "${PG_ARGS[@]}" 1>&2)
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$CACHE" "$SRC" >&2
WHEEL=$(ls "$CACHE"/quickfix-"$VERSION+$LOCAL.$TAG"-*.whl | head -1)
echo "$WHEEL" > "$DONE"
echo "$WHEEL"
