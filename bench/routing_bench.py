"""Routing strategies against the same seeded order flow and the same seeded, moving markets.

Three in-process venues, each a `native.Book` per symbol with its own fees/rebates, depth, spread and
latency. Background participants (seeded, independent of what we do) keep every book alive: a drifting
mid per symbol, limit orders arriving around it on each venue, cancels, and marketable orders that
take liquidity (they are what fills resting orders, ours included). Quotes left behind by a moving mid
get picked off by new ones, so resting orders suffer adverse selection as they would on a real venue.

The parent flow (1,200 orders by default: sizes 100 to 20,000 shares log-uniform, both sides, half
market, half limit from 4 ticks passive to 4 ticks through the far touch) is identical for every
strategy. Each strategy gets its own fresh copy of the markets and a `SmartRouter` with it as the
default; a small engine loop here does what oms.engine does with the router's plans (children reach a
venue after its latency, reports come back after it again) plus the residual re-routing described in
docs/routing.md: when none of a parent's IOC children is still out and some quantity is unrouted, the
router is asked again against the refreshed book. Limit parents work for 3 s, market parents 0.5 s;
then whatever still works is canceled.

Printed per strategy (TCA from sor.tca, arrival mid = NBBO mid when the parent arrived):
  shortfall   executed shares vs arrival mid, bps of arrival notional, positive = cost
  IS          implementation shortfall: unfilled shares are also charged, at what taking them from the
              consolidated book at the horizon would cost, so not trading is not free
  fill        filled / ordered
  fees        net fees paid (taker fees - rebates), dollars, and in bps of executed notional
  all-in      shortfall + fee bps

Run: .venv/bin/python bench/routing_bench.py [--parents 1200] [--seed 7] [--only sweep,single]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import native  # noqa: E402
from oms import events as ev  # noqa: E402
from oms.enums import OrdType, Side, TimeInForce  # noqa: E402
from oms.model import Order  # noqa: E402
from sor.router import DEFAULT_STRATEGY, SmartRouter  # noqa: E402
from sor.tca import Fill, ParentTCA, TCASummary, aggregate, parent_tca  # noqa: E402
from sor.venues import VenueProfile  # noqa: E402

TICK = Decimal("0.01")
OUR_BASE = 1 << 40  # native ids at or above this are our children; below, background orders
OURS = 1  # book owner of our children (background orders have none)
SESSION_MS = 20_000.0
MID_STEP_MS = 40.0
MD_DEPTH = 10
EPOCH = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
STRATEGIES = ("single", "pro_rata", "sweep", "cont_kukanov")

SYMBOLS: dict[str, int] = {"AAA": 4_000, "BBB": 6_000, "CCC": 9_000}  # reference mid in ticks


@dataclass(frozen=True)
class VenueSpec:
    profile: VenueProfile
    latency_ms: float
    depth: float  # size multiplier of its background quotes
    half_spread: int  # ticks from the mid to its innermost quotes
    rate: float  # background events per ms per symbol
    levels: int  # how many ticks deep its quoters spread out


VENUES: dict[str, VenueSpec] = {
    # Maker-taker, deep and fast: the expensive place to take, the generous place to rest.
    "ALPHA": VenueSpec(VenueProfile("ALPHA", maker_rebate=Decimal("0.0020"), taker_fee=Decimal("0.0030"),
                                    latency_ms=Decimal("0.5")), 0.5, 1.0, 1, 1.0, 10),
    # Inverted: takers are paid, makers pay. Thinner.
    "BETA": VenueSpec(VenueProfile("BETA", maker_rebate=Decimal("-0.0010"), taker_fee=Decimal("-0.0002"),
                                   latency_ms=Decimal("1.5")), 1.5, 0.5, 1, 0.7, 8),
    # Cheap, wider, slow, with an order size limit.
    "GAMMA": VenueSpec(VenueProfile("GAMMA", maker_rebate=Decimal("0.0010"), taker_fee=Decimal("0.0010"),
                                    latency_ms=Decimal("3"), max_order_qty=Decimal(5_000)), 3.0, 0.8, 2, 0.8, 10),
}


@dataclass(frozen=True)
class ParentSpec:
    at: float
    symbol: str
    side: Side
    qty: int
    market: bool
    aggression: int  # ticks beyond the far touch (negative: resting that far behind it)


def parent_flow(n: int, seed: int) -> list[ParentSpec]:
    rng = random.Random(seed * 7919 + 1)
    gap = (SESSION_MS - 3_500) / n
    out: list[ParentSpec] = []
    t = 50.0
    for _ in range(n):
        t += rng.expovariate(1 / gap)
        qty = int(round(math.exp(rng.uniform(math.log(100), math.log(20_000))) / 100)) * 100
        out.append(ParentSpec(t, rng.choice(sorted(SYMBOLS)), rng.choice((Side.BUY, Side.SELL)), max(qty, 100),
                              rng.random() < 0.5, rng.randint(-4, 4)))
    return out


@dataclass
class Parent:
    index: int
    spec: ParentSpec
    order: Order
    arrival_mid: Decimal | None
    deadline: float
    fills: list[Fill] = field(default_factory=list)
    closed: bool = False
    end_price: Decimal | None = None


class Market:
    """The venues' books and the background participants, in simulated milliseconds."""

    def __init__(self, seed: int) -> None:
        self.books: dict[tuple[str, str], Any] = {}
        self.live: dict[tuple[str, str], list[int]] = {}
        self.rng: dict[tuple[str, str], random.Random] = {}
        self.mid = dict(SYMBOLS)
        self.mid_rng = random.Random(seed * 104729 + 3)
        self.next_bg = 1
        for vi, (venue, spec) in enumerate(sorted(VENUES.items())):
            for si, (symbol, ref) in enumerate(sorted(SYMBOLS.items())):
                key = (venue, symbol)
                self.books[key] = native.Book(min_price=ref // 2, max_price=ref * 2, max_orders=200_000)
                self.live[key] = []
                self.rng[key] = random.Random(seed * 1_000_003 + vi * 101 + si)
                for k in range(spec.levels):
                    for side in (native.BUY, native.SELL):
                        self._quote(key, spec, side, spec.half_spread + k)

    def _quote(self, key: tuple[str, str], spec: VenueSpec, side: int, offset: int) -> list[Any]:
        rng = self.rng[key]
        mid = self.mid[key[1]]
        px = mid - offset if side == native.BUY else mid + offset
        qty = max(100, int(spec.depth * rng.randint(1, 8)) * 100)
        oid = self.next_bg
        self.next_bg += 1
        self.live[key].append(oid)
        return self.books[key].add(oid, side, px, qty, native.GTC)

    def background(self, key: tuple[str, str]) -> list[Any]:
        """One background event on one book; its events (which may fill our resting children)."""
        spec = VENUES[key[0]]
        rng = self.rng[key]
        live = self.live[key]
        r = rng.random()
        if r < 0.12:
            # Someone takes liquidity: the flow that fills resting orders.
            side = rng.choice((native.BUY, native.SELL))
            oid = self.next_bg
            self.next_bg += 1
            return self.books[key].market(oid, side, int(spec.depth * rng.randint(1, 6)) * 100 or 100)
        if r < 0.45 or len(live) > 6 * spec.levels:
            if not live:
                return []
            # Cancel the staler of two random quotes: books stay centred on the moving mid.
            i = rng.randrange(len(live))
            j = rng.randrange(len(live))
            book = self.books[key]
            mid = self.mid[key[1]]
            gi, gj = book.get(live[i]), book.get(live[j])
            di = abs(gi.price - mid) if gi else 1 << 30
            dj = abs(gj.price - mid) if gj else 1 << 30
            k = i if di >= dj else j
            oid = live[k]
            live[k] = live[-1]
            live.pop()
            return book.cancel(oid)
        offset = spec.half_spread + min(int(rng.expovariate(0.35)), spec.levels)
        return self._quote(key, spec, rng.choice((native.BUY, native.SELL)), offset)

    def step_mid(self) -> None:
        for symbol in sorted(self.mid):
            r = self.mid_rng.random()
            if r < 0.2:
                self.mid[symbol] -= 1
            elif r > 0.8:
                self.mid[symbol] += 1

    def snapshot(self, venue: str, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        book = self.books[(venue, symbol)]
        bids = [(px * TICK, Decimal(q)) for px, q, _ in book.depth(native.BUY, MD_DEPTH)]
        asks = [(px * TICK, Decimal(q)) for px, q, _ in book.depth(native.SELL, MD_DEPTH)]
        return bids, asks


class Run:
    """One strategy over the whole session."""

    def __init__(self, strategy: str, flow: list[ParentSpec], seed: int) -> None:
        self.strategy = strategy
        self.flow = flow
        self.market = Market(seed)
        self.router = SmartRouter(
            {s: "ALPHA" for s in SYMBOLS}, {v: spec.profile for v, spec in VENUES.items()},
            default_strategy=strategy, internal_venue=None,
        )
        self.up = frozenset(VENUES)
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.parents: list[Parent] = []
        self.children: dict[int, tuple[Parent, str, str]] = {}  # native id -> (parent, child id, venue)
        self.native_of: dict[str, int] = {}
        self.next_child = OUR_BASE
        self.child_count = 0
        self.exec_seq = 0

    def push(self, t: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, data))

    def run(self) -> list[ParentTCA]:
        bg_rng = random.Random(99)
        for key in sorted(self.market.books):
            self.push(bg_rng.expovariate(VENUES[key[0]].rate), "bg", key)
        t = 0.0
        while t < SESSION_MS:
            t += MID_STEP_MS
            self.push(t, "mid", None)
        for i, spec in enumerate(self.flow):
            self.push(spec.at, "arrive", i)
        while self.heap:
            now, _, kind, data = heapq.heappop(self.heap)
            if kind == "bg":
                if now < SESSION_MS:
                    self.on_events(now, data[0], self.market.background(data))
                    self.push(now + self.market.rng[data].expovariate(VENUES[data[0]].rate), "bg", data)
            elif kind == "mid":
                self.market.step_mid()
            elif kind == "arrive":
                self.arrive(now, data)
            elif kind == "child":
                self.child_arrives(now, *data)
            elif kind == "report":
                self.report(now, *data)
            elif kind == "horizon":
                self.horizon(now, data)
        return [self.tca(p) for p in self.parents]

    # --- market data and routing ------------------------------------------------------------
    def feed(self, symbol: str) -> None:
        for venue in sorted(VENUES):
            bids, asks = self.market.snapshot(venue, symbol)
            self.router.on_book(venue, symbol, bids, asks)

    def arrive(self, now: float, i: int) -> None:
        spec = self.flow[i]
        self.feed(spec.symbol)
        nbbo = self.router.nbbo(spec.symbol)
        price: Decimal | None = None
        if not spec.market:
            far = (nbbo.ask if spec.side is Side.BUY else nbbo.bid) if nbbo else None
            if far is None:
                return
            price = far + spec.side.sign * spec.aggression * TICK
        order_id = f"P{i}"
        accepted = ev.OrderAccepted(
            order_id, i, "BENCH", "ACC", f"c{i}", spec.symbol, spec.side,
            OrdType.MARKET if spec.market else OrdType.LIMIT, TimeInForce.DAY, Decimal(spec.qty), price, None,
            EPOCH + timedelta(milliseconds=now),
        )
        parent = Parent(len(self.parents), spec, Order.from_accepted(accepted), nbbo.mid if nbbo else None,
                        now + (500.0 if spec.market else 3_000.0))
        self.parents.append(parent)
        self.push(parent.deadline, "horizon", len(self.parents) - 1)
        self.route(now, len(self.parents) - 1, parent.order.order_qty)

    def route(self, now: float, pi: int, qty: Decimal) -> None:
        parent = self.parents[pi]
        order = parent.order
        for plan in self.router.route(order, qty, self.up):
            child_id = order.next_child_id()
            order.apply(ev.ChildRouted(order.order_id, child_id, plan.venue, plan.qty, plan.price, plan.ord_type,
                                       plan.time_in_force))
            nid = self.next_child
            self.next_child += 1
            self.child_count += 1
            self.children[nid] = (parent, child_id, plan.venue)
            self.native_of[child_id] = nid
            self.push(now + VENUES[plan.venue].latency_ms, "child", (pi, child_id, nid))

    def settle(self, now: float, pi: int) -> None:
        """The engine's residual rule: nothing of ours in flight as IOC and quantity unrouted -> route."""
        parent = self.parents[pi]
        order = parent.order
        if parent.closed or order.is_terminal or order.leaves_qty <= 0:
            return
        if any(ch.time_in_force is TimeInForce.IOC and not ch.done for ch in order.children.values()):
            return
        if order.unrouted_qty > 0:
            self.feed(parent.spec.symbol)
            self.route(now, pi, order.unrouted_qty)

    # --- venues -----------------------------------------------------------------------------
    def child_arrives(self, now: float, pi: int, child_id: str, nid: int) -> None:
        parent = self.parents[pi]
        child = parent.order.children[child_id]
        venue = child.venue
        if parent.closed:
            self.deliver(now, pi, venue, [("done", child_id)])
            return
        book = self.market.books[(venue, parent.spec.symbol)]
        side = native.BUY if parent.spec.side is Side.BUY else native.SELL
        if child.ord_type is OrdType.MARKET:
            events = book.market(nid, side, int(child.qty), OURS, native.STP_NONE)
        else:
            assert child.price is not None
            tif = {TimeInForce.IOC: native.IOC, TimeInForce.FOK: native.FOK}.get(child.time_in_force, native.GTC)
            events = book.add(nid, side, int(child.price / TICK), int(child.qty), tif, OURS, 0, native.STP_NONE)
        self.on_events(now, venue, events)

    def on_events(self, now: float, venue: str, events: Any) -> None:
        for e in events:
            if e.kind == native.EV_FILL:
                px = e.price * TICK
                for nid, taker in ((e.order_id, True), (e.maker_id, False)):
                    if nid >= OUR_BASE:
                        parent, child_id, _ = self.children[nid]
                        prof = VENUES[venue].profile
                        fee = prof.taker_fee if taker else -prof.maker_rebate
                        self.queue(now, parent, venue, ("fill", (child_id, Decimal(e.qty), px, fee)))
            elif e.kind in (native.EV_CANCELED, native.EV_REJECTED) and e.order_id >= OUR_BASE:
                parent, child_id, _ = self.children[e.order_id]
                self.queue(now, parent, venue, ("done", child_id))

    def queue(self, now: float, parent: Parent, venue: str, item: tuple[str, Any]) -> None:
        self.deliver(now, parent.index, venue, [item])

    def deliver(self, now: float, pi: int, venue: str, items: list[tuple[str, Any]]) -> None:
        self.push(now + VENUES[venue].latency_ms, "report", (pi, venue, items))

    def report(self, now: float, pi: int, venue: str, items: list[tuple[str, Any]]) -> None:
        parent = self.parents[pi]
        order = parent.order
        for kind, data in items:
            if kind == "fill":
                child_id, qty, px, fee = data
                child = order.children[child_id]
                qty = min(qty, child.qty - child.cum_qty, order.order_qty - order.cum_qty)
                if qty <= 0:
                    continue
                self.exec_seq += 1
                order.apply(ev.ChildFilled(order.order_id, child_id, venue, f"{venue}-{self.exec_seq}",
                                           order.next_exec_id(), qty, px, EPOCH + timedelta(milliseconds=now)))
                parent.fills.append(Fill(qty, px, venue, EPOCH + timedelta(milliseconds=now), qty * fee))
            else:
                child = order.children[data]
                if not child.done:
                    order.apply(ev.ChildDone(order.order_id, data, False, "canceled"))
        self.settle(now, pi)

    def horizon(self, now: float, pi: int) -> None:
        parent = self.parents[pi]
        parent.closed = True
        self.feed(parent.spec.symbol)
        nbbo = self.router.nbbo(parent.spec.symbol)
        parent.end_price = self.cost_to_complete(parent) or (nbbo.mid if nbbo else None)
        for child in parent.order.children.values():
            if not child.done:
                nid = self.native_of[child.child_id]
                book = self.market.books[(child.venue, parent.spec.symbol)]
                if book.get(nid) is not None:
                    book.cancel(nid)

    def cost_to_complete(self, parent: Parent) -> Decimal | None:
        """Average price of taking the unfilled rest from the consolidated book now (the deepest visible
        price for whatever is beyond it): what not having filled it costs."""
        order = parent.order
        left = order.order_qty - order.cum_qty
        if left <= 0:
            return None
        contra = self.router.book.levels(order.symbol, Side.SELL if parent.spec.side is Side.BUY else Side.BUY)
        notional, taken = Decimal(0), Decimal(0)
        for q in contra:
            take = min(q.qty, left - taken)
            notional += take * q.price
            taken += take
            if taken >= left:
                break
        if not contra:
            return None
        return (notional + (left - taken) * contra[-1].price) / left

    def tca(self, parent: Parent) -> ParentTCA:
        o = parent.order
        assert o.side is not None
        return parent_tca(o.order_id, o.symbol, o.side, o.order_qty, parent.arrival_mid, parent.fills,
                          o.created_at, parent.end_price)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parents", type=int, default=1_200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default=",".join(STRATEGIES))
    args = ap.parse_args()
    flow = parent_flow(args.parents, args.seed)
    n_market = sum(1 for p in flow if p.market)
    print(f"{len(flow)} parents ({n_market} market, {len(flow) - n_market} limit), "
          f"{sum(p.qty for p in flow):,} shares, {len(VENUES)} venues x {len(SYMBOLS)} symbols, seed {args.seed}")
    rows: list[tuple[str, TCASummary, int, float]] = []
    for name in args.only.split(","):
        started = time.perf_counter()
        run = Run(name, flow, args.seed)
        tcas = run.run()
        summary = aggregate(tcas, [f for p in run.parents for f in p.fills])
        rows.append((name, summary, run.child_count, time.perf_counter() - started))
    header = (f"{'strategy':<14}{'shortfall bps':>14}{'IS bps':>9}{'fill':>8}{'net fees $':>12}{'fee bps':>9}"
              f"{'all-in bps':>12}{'children':>10}{'secs':>7}")
    print(header)
    print("-" * len(header))
    for name, s, children, secs in rows:
        mark = " *" if name == DEFAULT_STRATEGY else ""
        print(f"{name + mark:<14}{_f(s.shortfall_bps):>14}{_f(s.implementation_shortfall_bps):>9}"
              f"{float(s.fill_rate):>8.1%}{float(s.net_fees):>12,.2f}{_f(s.net_fees_bps):>9}{_f(s.all_in_bps):>12}"
              f"{children:>10,}{secs:>7.1f}")
    print(f"* default strategy: {DEFAULT_STRATEGY} (sor.router.DEFAULT_STRATEGY)")
    by_name = {name: s for name, s, _, _ in rows}
    default = by_name.get(DEFAULT_STRATEGY)
    if default is not None and default.shortfall_bps is not None:
        for other in ("single", "pro_rata"):
            o = by_name.get(other)
            if o is not None and o.shortfall_bps is not None:
                verdict = "beats" if default.shortfall_bps < o.shortfall_bps else "DOES NOT beat"
                print(f"  {DEFAULT_STRATEGY} {verdict} {other} on shortfall: "
                      f"{default.shortfall_bps} vs {o.shortfall_bps} bps")


def _f(d: Decimal | None) -> str:
    return "-" if d is None else f"{float(d):.2f}"


if __name__ == "__main__":
    main()
