"""Cont-Kukanov's whole-lot allocation (sor.strategies._allocate_lots) takes a shortcut: while a whole chunk
is left it merges the candidates with a heap instead of asking each of them every round. That is only a
shortcut: this checks, on random books, queues and caps, that it allocates exactly what the plain greedy -
one chunk per round, every candidate asked each round, below as it was before any shortcut - allocates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sor.book import Quote
from sor.strategies import CK_CHUNKS, _allocate_lots, _in_lots, _Passive
from sor.venues import VenueProfile

D = Decimal


class RefLane:
    """A passive venue as the plain greedy kept it: its quote a tuple (step, lots, cost per share, tail after)."""

    def __init__(self, name: str, cap: int | None, queue: float, outflow: float, gain: float) -> None:
        self.name, self.cap, self.queue, self.outflow, self.gain = name, cap, queue, outflow, gain
        self.placed = 0
        self.tail = math.exp(-queue / outflow)
        self.quote: tuple[int, int, float, float] | None = None


def plain_greedy(
    lot: Decimal, lots: tuple[int, list[int], dict[str, int | None]], ladder: Sequence[Quote],
    takers: Mapping[str, VenueProfile], passive: list[_Passive], penalty: Decimal, mid: Decimal, sign: int,
    activity: Decimal,
) -> tuple[dict[tuple[str, Decimal], Decimal], list[tuple[str, Decimal]]]:
    """_allocate_lots without its shortcut: every candidate priced or compared each round."""
    qty, level_qty, maxima = lots
    chunk = max(1, -(-qty // CK_CHUNKS))
    market: dict[tuple[str, Decimal], int] = {}
    taker_used: dict[str, int] = {}
    taker_cost = [float(sign * (q.price - mid) + takers[q.venue].taker_fee) for q in ladder]
    f_activity, f_penalty, f_lot = float(activity), float(penalty), float(lot)
    venues = [RefLane(p.venue.name, maxima[p.venue.name], float(p.queue), float(p.outflow), float(p.gain))
              for p in passive]
    level, level_left = 0, level_qty[0] if level_qty else 0
    left = qty
    while left > 0:
        step = min(chunk, left)
        best_cost: float | None = None
        best: RefLane | None = None
        take = 0
        while level < len(ladder):
            venue = ladder[level].venue
            cap = maxima[venue]
            room = level_left if cap is None else min(level_left, cap - taker_used.get(venue, 0))
            if room > 0:
                take = min(left, room)
                best_cost = taker_cost[level]
                break
            level += 1
            level_left = level_qty[level] if level < len(ladder) else 0
        for v in venues:
            quote = v.quote
            if quote is None or quote[0] != step:
                want = v.placed + step
                room = (want if v.cap is None else min(want, v.cap)) - v.placed
                if room <= 0:
                    continue
                after = math.exp(-(v.queue + (v.placed + room) * f_lot) / v.outflow)
                expected_fill = f_activity * v.outflow * (v.tail - after)
                shares = room * f_lot
                quote = v.quote = (step, room, (f_penalty * shares - (f_penalty + v.gain) * expected_fill) / shares,
                                   after)
            _, room, cost, _ = quote
            if best_cost is None or cost < best_cost:
                best_cost, best, take = cost, v, room
        if best_cost is None:
            break
        if best is None:
            q = ladder[level]
            market[(q.venue, q.price)] = market.get((q.venue, q.price), 0) + take
            taker_used[q.venue] = taker_used.get(q.venue, 0) + take
            level_left -= take
        else:
            assert best.quote is not None
            best.placed += take
            best.tail = best.quote[3]
            best.quote = None
        left -= take
    return ({k: n * lot for k, n in market.items()},
            [(v.name, v.placed * lot) for v in venues if v.placed > 0])


VENUES = ("A", "B", "C")


@st.composite
def allocations(draw: st.DrawFn) -> tuple[object, ...]:
    lot = draw(st.sampled_from([D(1), D(100)]))
    sign = draw(st.sampled_from([1, -1]))
    mid = D("100.00")
    profiles = {
        name: VenueProfile(name, maker_rebate=D(draw(st.integers(-2, 3))) / 1000,
                           taker_fee=D(draw(st.integers(-1, 3))) / 1000,
                           max_order_qty=draw(st.none() | st.integers(1, 40).map(lambda n: D(n) * lot)))
        for name in draw(st.lists(st.sampled_from(VENUES), min_size=1, max_size=3, unique=True))
    }
    names = sorted(profiles)
    ladder = sorted(
        (Quote(draw(st.sampled_from(names)), mid + sign * D(draw(st.integers(1, 5))) / 100,
               D(draw(st.integers(1, 30))) * lot)
         for _ in range(draw(st.integers(0, 4)))),
        key=lambda q: (sign * q.price, q.venue))
    passive = [_Passive(profiles[n], D(draw(st.integers(0, 3000))), D(draw(st.integers(1, 3000))),
                        D(draw(st.integers(-5, 20))) / 1000)
               for n in draw(st.lists(st.sampled_from(names), max_size=3, unique=True))]
    qty = D(draw(st.integers(1, 3 * CK_CHUNKS))) * lot
    penalty = D(draw(st.integers(0, 40))) / 1000
    activity = D(draw(st.sampled_from(["0.5", "1", "0.1"])))
    return qty, lot, ladder, profiles, passive, penalty, mid, sign, activity


@settings(max_examples=400, deadline=None)
@given(allocations())
def test_the_heap_allocates_what_the_plain_greedy_does(case: tuple[object, ...]) -> None:
    qty, lot, ladder, takers, passive, penalty, mid, sign, activity = case
    lots = _in_lots(qty, lot, ladder, takers, passive)  # type: ignore[arg-type]
    assert lots is not None
    args = (lot, lots, ladder, takers, passive, penalty, mid, sign, activity)
    assert _allocate_lots(*args) == plain_greedy(*args)  # type: ignore[arg-type]

