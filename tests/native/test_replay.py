"""Seeded long replay: a million mixed operations (every kind, every TIF,
icebergs, self-match owners, replaces, rejects, sparse far-away levels) run
through the C book and the reference in chunks, alternating the per-order,
Python-packed and pre-packed paths; events and state must agree throughout.

FIXOMS_REPLAY_OPS sets the length (default 1,000,000); `make sanitize` runs
it under AddressSanitizer and UndefinedBehaviorSanitizer.
"""

from __future__ import annotations

import os
import random
from typing import Any

from native import (
    BUY,
    DAY,
    FOK,
    GTC,
    IOC,
    SELL,
    Event,
    OpTuple,
    ReferenceBook,
    format_event,
    op_add,
    op_cancel,
    op_market,
    op_replace,
    pack_ops,
)
from tests.native import load_book

Book = load_book().Book

N_OPS = int(os.environ.get("FIXOMS_REPLAY_OPS", "1000000"))
SEED = 20240607
MIN_PRICE = 1
MAX_PRICE = 100_000
MAX_ORDERS = 8_000
CHUNK = 5_000


def generate(n: int, seed: int) -> list[OpTuple]:
    rnd = random.Random(seed)
    rand, randint, choice = rnd.random, rnd.randint, rnd.choice
    ops: list[OpTuple] = []
    ids: list[int] = []
    far: list[int] = []
    next_id = 1
    mid = 50_000
    tifs = [GTC] * 16 + [DAY] * 2 + [IOC] * 3 + [FOK] * 2
    for _ in range(n):
        if rand() < 0.001:
            mid = min(MAX_PRICE - 200, max(MIN_PRICE + 200, mid + randint(-50, 50)))
        x = rand()
        if x < 0.50:
            oid = next_id if rand() < 0.995 else choice(ids or [0])  # a few duplicates
            next_id += 1
            side = randint(0, 1)
            r = rand()
            if r < 0.94:
                price = mid + (randint(-1, 12) if side == SELL else randint(-12, 1))
            elif r < 0.97:
                price = randint(MIN_PRICE, MAX_PRICE)  # sparse levels far from the touch
                far.append(oid)
            else:  # at and just outside the band
                price = choice([MIN_PRICE, MAX_PRICE, MIN_PRICE - 1, MAX_PRICE + 1, 0])
            qty = randint(1, 50) if rand() < 0.98 else choice([0, -5, 10**6])
            display = 0 if rand() < 0.85 else randint(1, 10)
            owner = 0 if rand() < 0.8 else randint(1, 4)
            ops.append(op_add(oid, side, price, qty, choice(tifs), owner, display, randint(0, 3)))
            ids.append(oid)
        elif x < 0.55:
            side = randint(0, 1)
            owner = 0 if rand() < 0.7 else randint(1, 4)
            ops.append(op_market(next_id, side, randint(1, 80), owner, randint(0, 3)))
            next_id += 1
        elif x < 0.85:
            if far and rand() < 0.1:
                ops.append(op_cancel(far.pop(randint(0, len(far) - 1))))
            elif ids and rand() < 0.95:
                i = randint(0, len(ids) - 1)
                ops.append(op_cancel(ids[i]))
            else:
                ops.append(op_cancel(randint(0, 2**64 - 1)))
        else:
            oid = ids[randint(0, len(ids) - 1)] if ids else 1
            price = mid + randint(-15, 15) if rand() < 0.95 else MAX_PRICE + 7
            ops.append(op_replace(oid, price, randint(1, 60) if rand() < 0.99 else 0))
        if len(ids) > 20_000:
            del ids[:10_000]
    return ops


def fingerprint(b: Any) -> tuple[object, ...]:
    return (len(b), b.best_bid(), b.best_ask(), b.depth(BUY, 25), b.depth(SELL, 25))


def run_chunk(c: Any, k: int, chunk: list[OpTuple]) -> list[Event]:
    mode = k % 3
    if mode == 0:
        return c.execute(chunk).to_list()
    if mode == 1:
        return c.execute_packed(pack_ops(chunk), len(chunk)).to_list()
    out: list[Event] = []
    for typ, side, tif, stp, oid, price, qty, display, owner in chunk:
        if typ == 1:
            out += c.add(oid, side, price, qty, tif, owner, display, stp)
        elif typ == 2:
            out += c.market(oid, side, qty, owner, stp)
        elif typ == 3:
            out += c.cancel(oid)
        else:
            out += c.replace(oid, price, qty)
    return out


def test_seeded_replay_matches_reference() -> None:
    ops = generate(N_OPS, SEED)
    c = Book(MIN_PRICE, MAX_PRICE, MAX_ORDERS)
    r = ReferenceBook(MIN_PRICE, MAX_PRICE, MAX_ORDERS)
    total = 0
    for k, start in enumerate(range(0, len(ops), CHUNK)):
        chunk = ops[start : start + CHUNK]
        got = run_chunk(c, k, chunk)
        want = r.execute(chunk).to_list()
        if got != want:
            i = next(
                (j for j, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            raise AssertionError(
                f"chunk at op {start}: event {i} differs\n"
                f"  C:   {format_event(got[i]) if i < len(got) else '-'}\n"
                f"  ref: {format_event(want[i]) if i < len(want) else '-'}"
            )
        total += len(got)
        assert fingerprint(c) == fingerprint(r), f"state differs after op {start + len(chunk)}"
        if k % 20 == 0:
            c.check()
    c.check()
    r.check()
    assert total > len(ops)  # the mix really matches, not just rejects
