"""Routing strategies: how one parent's quantity is split into child orders across lit venues.

Each strategy is a small stateless object with a `name` and `plan(request) -> list[ChildPlan]`. The
request already holds everything a strategy may look at (the order's terms, the NBBO and every lit
level on both sides of the book over the venues that are up, the venue profiles), so a plan is a pure
function of it: the same request always gives the same plan.

A plan may cover less than the requested quantity: what is left stays unrouted and the engine asks
again once the IOC children are back (against the refreshed book). The router checks every plan
against the hard rules afterwards (quantity, limit price, venue up and capable), so a strategy bug can
shrink a plan but never break an invariant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from oms.enums import OrdType, Side, TimeInForce
from oms.ports import ChildPlan
from sor.book import NBBO, Quote
from sor.venues import VenueProfile

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
# The Cont-Kukanov allocation works in chunks: fine enough to split well, coarse enough to stay cheap.
CK_CHUNKS = 100


def _tail(depth: Decimal, outflow: Decimal) -> float:
    """P(xi > depth) / a for the exponential outflow: e^(-depth/mu).

    Fill probabilities and the costs built on them are model estimates, so they are binary floats (a
    Decimal exp() was most of an order's routing time: about one per chunk); quantities stay exact."""
    return math.exp(-float(depth) / float(outflow))


@dataclass(frozen=True, slots=True)
class RouteRequest:
    symbol: str
    side: Side
    qty: Decimal
    limit: Decimal | None  # None: a market order
    ord_type: OrdType  # what the children are by default (the parent's child_ord_type)
    tif: TimeInForce  # the parent's child_tif
    nbbo: NBBO | None
    contra: tuple[Quote, ...]  # levels an order of `side` takes from, best first
    same: tuple[Quote, ...]  # levels an order of `side` would join, best first
    venues: Mapping[str, VenueProfile]  # lit venues that are up
    default_venue: str | None = None
    lot: Decimal = ONE
    allow_ioc: bool = True  # False once this parent's IOC children have missed too often
    urgency_bps: Decimal = Decimal(5)
    touch_activity: Decimal = Decimal("0.5")  # Cont-Kukanov: P(a venue's touch trades at all in the horizon)
    # Per-venue levels, derived once: strategies look them up by venue a lot.
    _by_venue: dict[str, list[Quote]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def buy(self) -> bool:
        return self.side is Side.BUY

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: `sign * price` is "how much we pay" in either direction."""
        return 1 if self.side is Side.BUY else -1

    @property
    def resting(self) -> bool:
        """May children of this order rest on a book (everything but IOC/FOK)?"""
        return self.tif not in (TimeInForce.IOC, TimeInForce.FOK)

    def acceptable(self, price: Decimal) -> bool:
        """Within the order's limit (a market order accepts any price)."""
        if self.limit is None:
            return True
        return price <= self.limit if self.buy else price >= self.limit

    def takers(self) -> dict[str, VenueProfile]:
        return {n: p for n, p in self.venues.items() if p.can_take}

    def makers(self) -> dict[str, VenueProfile]:
        return {n: p for n, p in self.venues.items() if p.accepts(OrdType.LIMIT)}

    def takeable(self) -> list[Quote]:
        """Contra levels within the limit at venues we can send an IOC to."""
        takers = self.takers()
        return [q for q in self.contra if q.venue in takers and self.acceptable(q.price)]

    def marketable(self) -> bool:
        far = self.nbbo.touch(self.side) if self.nbbo else None
        return self.limit is None or (far is not None and self.acceptable(far))

    def queue_ahead(self, venue: str, price: Decimal) -> Decimal:
        """Displayed size at `venue` that would trade before a new resting order of ours at `price`."""
        buy = self.side is Side.BUY
        ahead = ZERO
        for q in self.same:
            if q.venue == venue and (q.price >= price if buy else q.price <= price):
                ahead += q.qty
        return ahead

    def venue_contra(self, venue: str) -> list[Quote]:
        if not self._by_venue:
            for q in self.contra:
                self._by_venue.setdefault(q.venue, []).append(q)
        return self._by_venue.get(venue, [])


class Strategy(Protocol):
    name: str

    def plan(self, req: RouteRequest) -> list[ChildPlan]: ...


# --- building blocks shared by the strategies ---------------------------------------------------
def sweep_levels(req: RouteRequest, qty: Decimal) -> tuple[list[ChildPlan], Decimal]:
    """Fee-adjusted sweep of the consolidated book: take acceptable levels best price first and, at one
    price, cheapest all-in (price plus taker fee) first, so no better-priced protected quote is left
    standing while we pay more elsewhere. One IOC limit per venue, pinned at the deepest level taken
    there: the venue fills its better levels first, exactly as one IOC per level would, in fewer messages.
    Returns the children and the quantity they cover."""
    if not req.allow_ioc or qty <= 0:
        return [], ZERO
    takers = req.takers()
    s = req.sign
    levels = sorted(req.takeable(), key=lambda q: (s * q.price, s * q.price + takers[q.venue].taker_fee, q.venue))
    left = qty
    used: dict[str, Decimal] = {}
    deepest: dict[str, Decimal] = {}
    for q in levels:
        if left <= 0:
            break
        prof = takers[q.venue]
        room = left if prof.max_order_qty is None else min(left, prof.max_order_qty - used.get(q.venue, ZERO))
        take = min(q.qty, room)
        if take <= 0:
            continue
        used[q.venue] = used.get(q.venue, ZERO) + take
        deepest[q.venue] = q.price
        left -= take
    children = [ChildPlan(v, used[v], deepest[v], OrdType.LIMIT, TimeInForce.IOC) for v in used]
    return children, qty - left


def passive_price(req: RouteRequest) -> Decimal | None:
    """Where a resting child of this order goes: a limit that does not reach the far touch rests at its
    limit (the client's own price); a marketable or market order that is being worked passively joins the
    near touch, never beyond its limit. None when there is no price to join."""
    nbbo = req.nbbo
    far = nbbo.touch(req.side) if nbbo else None
    near = nbbo.near(req.side) if nbbo else None
    if req.limit is not None and (far is None or not req.acceptable(far)):
        return req.limit
    if near is None:
        return None
    if req.limit is None:
        return near
    return min(near, req.limit) if req.buy else max(near, req.limit)


def ranked_makers(req: RouteRequest, price: Decimal) -> list[VenueProfile]:
    """Venues to rest at, best first: highest maker rebate, then the shortest queue ahead of us."""
    makers = req.makers()
    return sorted(makers.values(), key=lambda p: (-p.maker_rebate, req.queue_ahead(p.name, price), p.name))


def rest(req: RouteRequest, qty: Decimal, price: Decimal) -> list[ChildPlan]:
    """Rest `qty` at `price`, at the best maker venue (spilling to the next ones past a size limit)."""
    if not req.resting or qty <= 0:
        return []
    out: list[ChildPlan] = []
    left = qty
    for prof in ranked_makers(req, price):
        take = prof.capacity(left)
        if take > 0:
            out.append(ChildPlan(prof.name, take, price, OrdType.LIMIT, req.tif))
            left -= take
        if left <= 0:
            break
    return out


def _far_price(req: RouteRequest, venue: str) -> Decimal | None:
    levels = req.venue_contra(venue)
    return levels[0].price if levels else None


def single_venue(req: RouteRequest) -> list[ChildPlan]:
    """The whole order, on its own terms, at the one venue with the best far touch (then the most size
    there, the lowest taker fee); the symbol's default venue when nobody quotes."""
    ioc = req.tif in (TimeInForce.IOC, TimeInForce.FOK)
    takes = req.marketable()
    candidates = [p for p in req.venues.values() if p.accepts(req.ord_type, ioc=ioc) and not (takes and p.post_only)]
    if not candidates:
        return []
    s = req.sign

    def rank(p: VenueProfile) -> tuple[int, Decimal, Decimal, Decimal, str]:
        px = _far_price(req, p.name)
        if px is None:
            return (1, ZERO, ZERO, p.taker_fee, p.name)
        size = req.venue_contra(p.name)[0].qty
        return (0, s * px, -size, p.taker_fee, p.name)

    quoted = [p for p in candidates if _far_price(req, p.name) is not None]
    if quoted:
        whole = [p for p in quoted if p.accepts(req.ord_type, req.qty, ioc)]
        best = min(whole or quoted, key=rank)
    else:
        by_name = {p.name: p for p in candidates}
        best = by_name.get(req.default_venue or "") or min(candidates, key=lambda p: p.name)
    return [ChildPlan(best.name, best.capacity(req.qty), req.limit, req.ord_type, req.tif)]


def split(qty: Decimal, weights: Sequence[tuple[str, Decimal]], lot: Decimal) -> dict[str, Decimal]:
    """`qty` in proportion to `weights`, in whole lots (largest remainder; ties by order given), with any
    odd lot going to the heaviest. Deterministic; the parts sum to exactly `qty`."""
    total = sum((w for _, w in weights), ZERO)
    if total <= 0 or qty <= 0:
        return {}
    lots = (qty / lot).to_integral_value(ROUND_FLOOR)
    raw = [(name, lots * w / total) for name, w in weights]
    parts = {name: share.to_integral_value(ROUND_FLOOR) for name, share in raw}
    spare = lots - sum(parts.values(), ZERO)
    by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i][1] - parts[raw[i][0]]), i))
    for i in by_remainder[: int(spare)]:
        parts[raw[i][0]] += 1
    out = {name: n * lot for name, n in parts.items()}
    odd = qty - lots * lot
    if odd > 0:
        heaviest = max(range(len(weights)), key=lambda i: (weights[i][1], -i))
        out[weights[heaviest][0]] += odd
    return {name: q for name, q in out.items() if q > 0}


# --- the strategies -----------------------------------------------------------------------------
class SingleVenue:
    """All of it to one venue: the naive baseline."""

    name = "single"

    def plan(self, req: RouteRequest) -> list[ChildPlan]:
        return single_venue(req)


class ProRata:
    """Split by displayed size at acceptable prices, each child on the parent's own terms."""

    name = "pro_rata"

    def plan(self, req: RouteRequest) -> list[ChildPlan]:
        ioc = req.tif in (TimeInForce.IOC, TimeInForce.FOK)
        usable = {
            n: p for n, p in req.venues.items()
            if p.accepts(req.ord_type, ioc=ioc) and not (p.post_only and req.marketable())
        }
        sizes: dict[str, Decimal] = {}
        for q in req.contra:
            if q.venue in usable and req.acceptable(q.price):
                sizes[q.venue] = sizes.get(q.venue, ZERO) + q.qty
        if not sizes:
            return single_venue(req)
        weights = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        parts = split(req.qty, weights, req.lot)
        out: list[ChildPlan] = []
        for name, _ in weights:
            qty = usable[name].capacity(parts.get(name, ZERO))
            if qty > 0:
                out.append(ChildPlan(name, qty, req.limit, req.ord_type, req.tif))
        return out


class Sweep:
    """Take what is visible within the limit with IOCs (fee-adjusted, price first); a limit order that
    cannot take anything rests at its limit at the best maker venue; an order that should take but finds
    nothing visible goes whole to one venue. What the IOCs miss comes back for another round."""

    name = "sweep"

    def plan(self, req: RouteRequest) -> list[ChildPlan]:
        children, taken = sweep_levels(req, req.qty)
        if children:
            # The rest waits for the IOC results: resting it now at the limit would race our own IOCs
            # for the same levels, at the taker fee.
            return children
        if not req.resting or req.limit is None or req.marketable():
            # Nothing visible to take (or our IOCs keep missing): the order goes on its own terms to one
            # venue, which may hold liquidity its feed does not show.
            return single_venue(req)
        return rest(req, req.qty, req.limit)


class PostOnly:
    """Passive only: rest at the near touch (capped at the limit) at the venue paying the best rebate.
    Never takes: a price that would reach the far touch is not sent."""

    name = "post_only"

    def plan(self, req: RouteRequest) -> list[ChildPlan]:
        if not req.resting:
            return []
        near = req.nbbo.near(req.side) if req.nbbo else None
        far = req.nbbo.touch(req.side) if req.nbbo else None
        if near is not None:
            price = near if req.limit is None else (min(near, req.limit) if req.buy else max(near, req.limit))
        elif req.limit is not None:
            price = req.limit
        else:
            return []
        if far is not None and (price >= far if req.buy else price <= far):
            return []
        return rest(req, req.qty, price)


@dataclass(slots=True)
class _Passive:
    venue: VenueProfile
    queue: Decimal  # Q_k: displayed size ahead of us
    outflow: Decimal  # mean of xi_k: shares expected to trade at that price within the horizon
    gain: Decimal  # h_k + r_k: saving against the mid plus the rebate, per share filled
    placed: Decimal = ZERO
    tail: float = 1.0  # e^{-(Q_k + placed)/mu_k}
    # The next chunk's quote (step it was priced for, its size, cost per share, tail after it): only the
    # venue that just got a chunk needs a new one, which keeps exp() calls to about one per chunk.
    quote: tuple[Decimal, Decimal, float, float] | None = None


class ContKukanov:
    """Cont & Kukanov (2017), "Optimal order placement in limit order markets", static version.

    The parent (S shares) is split into a market part M, taken now at the visible levels, and limit
    orders L_k resting at venue k behind a queue Q_k. Over the horizon, venue k's queue sees an outflow
    xi_k (executions and cancels); our order there fills min((xi_k - Q_k)+, L_k). The paper's cost is

        V = (h + f) M - sum_k (h_k + r_k) min((xi_k - Q_k)+, L_k) + lambda_u (S - A)+ + lambda_o (A - S)+

    with A the total filled, h the half spread, f the taker fee, r_k the rebate. We keep this cost with
    three simplifications: (1) the market part walks the real fee-adjusted ladder, so its marginal cost
    is (price - mid) + fee of the level it reaches instead of a flat h + f; (2) the OMS never routes more
    than the parent's quantity (M + sum L_k <= S), so overfill is impossible and lambda_o drops out;
    (3) xi_k is 0 with probability 1 - a (nobody trades at that touch within the horizon) and else
    exponential with mean mu_k (the venue's `touch_outflow`, else its displayed touch size), which makes
    E[fill] = a mu (e^{-Q/mu} - e^{-(Q+L)/mu}) closed-form; a (`touch_activity`) keeps the model from
    promising a sure fill to an order that starts a new price level. With (2) the expected cost is
    separable and its marginal costs increase, so allocating chunk by chunk to the cheapest marginal use
    (a market share, or the next limit share at some venue, whose expected cost is
    lambda_u - (lambda_u + h_k + r_k) P(xi_k > Q_k + L_k)) is optimal on the chunk grid.

    lambda_u, the price of a share left unfilled at the horizon, is what completing it later costs: the
    far half spread, the cheapest taker fee and an urgency premium (`urgency_bps` of the mid).

    Market and IOC/FOK parents have no horizon to wait for (lambda_u is unbounded), so they get the
    sweep. The model's numbers are estimates; the quantities and prices it produces are exact.
    """

    name = "cont_kukanov"

    def plan(self, req: RouteRequest) -> list[ChildPlan]:
        nbbo = req.nbbo
        if req.limit is None or not req.resting or nbbo is None or nbbo.mid is None:
            return Sweep().plan(req)
        mid = nbbo.mid
        s = req.sign
        takers = req.takers()
        # Nothing is takeable within a limit that does not reach the far touch: no need to look.
        ladder = sorted(
            req.takeable() if req.allow_ioc and req.marketable() else [],
            key=lambda q: (s * q.price, s * q.price + takers[q.venue].taker_fee, q.venue),
        )
        price = passive_price(req)
        passive: list[_Passive] = []
        if price is not None:
            for prof in sorted(req.makers().values(), key=lambda p: p.name):
                outflow = prof.touch_outflow or self._outflow(req, prof.name)
                gain = s * (mid - price) + prof.maker_rebate
                passive.append(_Passive(prof, req.queue_ahead(prof.name, price), outflow, gain))
        far = nbbo.touch(req.side)
        half = s * (far - mid) if far is not None else ZERO
        min_fee = min((p.taker_fee for p in takers.values()), default=ZERO)
        penalty = half + min_fee + mid * req.urgency_bps / BPS
        market, placed = self.allocate(req.qty, req.lot, ladder, takers, passive, penalty, mid, s,
                                       req.touch_activity)
        children, _ = sweep_levels(_only(req, market), sum(market.values(), ZERO)) if market else ([], ZERO)
        assert price is not None or not placed
        for venue, qty in placed:
            children.append(ChildPlan(venue, qty, price, OrdType.LIMIT, req.tif))
        return children

    @staticmethod
    def _outflow(req: RouteRequest, venue: str) -> Decimal:
        # Without a configured rate, assume the venue's touch turns over about once per horizon: busier
        # venues show bigger touches. Never below one lot so an empty venue still gets a fair chance.
        touch = [q.qty for q in req.same if q.venue == venue][:1] + [q.qty for q in req.venue_contra(venue)][:1]
        return max(max(touch, default=ZERO), req.lot)

    @staticmethod
    def allocate(
        qty: Decimal,
        lot: Decimal,
        ladder: Sequence[Quote],
        takers: Mapping[str, VenueProfile],
        passive: list[_Passive],
        penalty: Decimal,
        mid: Decimal,
        sign: int,
        activity: Decimal = ONE,
    ) -> tuple[dict[tuple[str, Decimal], Decimal], list[tuple[str, Decimal]]]:
        """Greedy chunk allocation. Returns {(venue, level price): qty taken} and [(venue, qty rested)]."""
        lots = _in_lots(qty, lot, ladder, takers, passive)
        if lots is not None:
            return _allocate_lots(lot, lots, ladder, takers, passive, penalty, mid, sign, activity)
        chunk = max(lot, (qty / CK_CHUNKS / lot).to_integral_value(ROUND_CEILING) * lot)
        market: dict[tuple[str, Decimal], Decimal] = {}
        taker_used: dict[str, Decimal] = {}
        level, level_left = 0, ladder[0].qty if ladder else ZERO
        left = qty
        for p in passive:
            p.tail = _tail(p.queue, p.outflow)
        f_activity, f_penalty = float(activity), float(penalty)
        while left > 0:
            step = min(chunk, left)
            best_cost: Decimal | float | None = None
            best: _Passive | None = None
            take = ZERO
            while level < len(ladder):
                q = ladder[level]
                prof = takers[q.venue]
                room = level_left if prof.max_order_qty is None else min(
                    level_left, prof.max_order_qty - taker_used.get(q.venue, ZERO))
                if room > 0:
                    # A level's cost is flat and the limit quotes do not change while we take, so the
                    # chunk-by-chunk greedy would take all of it it needs: do so in one step.
                    take = min(left, room)
                    best_cost = sign * (q.price - mid) + prof.taker_fee
                    break
                level += 1
                level_left = ladder[level].qty if level < len(ladder) else ZERO
            for p in passive:
                if p.quote is None or p.quote[0] != step:
                    room = p.venue.capacity(p.placed + step) - p.placed
                    if room <= 0:
                        continue
                    after = _tail(p.queue + p.placed + room, p.outflow)
                    expected_fill = f_activity * float(p.outflow) * (p.tail - after)
                    f_room = float(room)
                    p.quote = (step, room, (f_penalty * f_room - (f_penalty + float(p.gain)) * expected_fill) / f_room,
                               after)
                _, room, cost, _ = p.quote
                if best_cost is None or cost < best_cost:
                    best_cost, best, take = cost, p, room
            if best_cost is None:
                break
            if best is None:
                q = ladder[level]
                market[(q.venue, q.price)] = market.get((q.venue, q.price), ZERO) + take
                taker_used[q.venue] = taker_used.get(q.venue, ZERO) + take
                level_left -= take
            else:
                assert best.quote is not None
                best.placed += take
                best.tail = best.quote[3]
                best.quote = None
            left -= take
        placed = [(p.venue.name, p.placed) for p in passive if p.placed > 0]
        return market, placed


def _in_lots(qty: Decimal, lot: Decimal, ladder: Sequence[Quote], takers: Mapping[str, VenueProfile],
             passive: list[_Passive]) -> tuple[int, list[int], dict[str, int | None]] | None:
    """Every quantity `allocate` works with as a whole number of lots, or None if one is not (then it
    works in Decimal): the order, each level, each venue's maximum order size."""
    def whole(x: Decimal) -> int | None:
        n = x / lot
        return int(n) if n == n.to_integral_value() else None

    total = whole(qty)
    levels = [whole(q.qty) for q in ladder]
    maxima: dict[str, int | None] = {}
    for prof in [*takers.values(), *[p.venue for p in passive]]:
        maxima[prof.name] = None if prof.max_order_qty is None else whole(prof.max_order_qty)
        if prof.max_order_qty is not None and maxima[prof.name] is None:
            return None
    if total is None or any(n is None for n in levels):
        return None
    return total, [n for n in levels if n is not None], maxima


def _allocate_lots(
    lot: Decimal, lots: tuple[int, list[int], dict[str, int | None]], ladder: Sequence[Quote],
    takers: Mapping[str, VenueProfile], passive: list[_Passive], penalty: Decimal, mid: Decimal, sign: int,
    activity: Decimal,
) -> tuple[dict[tuple[str, Decimal], Decimal], list[tuple[str, Decimal]]]:
    """ContKukanov.allocate on whole lots (ints) and float costs: the same greedy, several times
    cheaper than Decimal arithmetic per chunk (a 50-share order is 50 chunks of one lot)."""
    qty, level_qty, maxima = lots
    chunk = max(1, -(-qty // CK_CHUNKS))
    market: dict[tuple[str, Decimal], int] = {}
    taker_used: dict[str, int] = {}
    taker_cost = [float(sign * (q.price - mid) + takers[q.venue].taker_fee) for q in ladder]
    f_activity, f_penalty, f_lot = float(activity), float(penalty), float(lot)
    venues = [_Lane(p.venue.name, maxima[p.venue.name], float(p.queue), float(p.outflow), float(p.gain))
              for p in passive]
    level, level_left = 0, level_qty[0] if level_qty else 0
    left = qty

    def market_room() -> int:
        """Lots the current ladder level can still give (moving `level` past spent or capped ones)."""
        nonlocal level, level_left
        while level < len(ladder):
            venue = ladder[level].venue
            cap = maxima[venue]
            room = level_left if cap is None else min(level_left, cap - taker_used.get(venue, 0))
            if room > 0:
                return room
            level += 1
            level_left = level_qty[level] if level < len(ladder) else 0
        return 0

    def take_market(take: int) -> None:
        nonlocal level_left
        q = ladder[level]
        market[(q.venue, q.price)] = market.get((q.venue, q.price), 0) + take
        taker_used[q.venue] = taker_used.get(q.venue, 0) + take
        level_left -= take

    # Whole chunks: while at least a chunk is left, a candidate's price for the next chunk changes only
    # when it wins one, so the greedy is a merge of the candidates by (cost, rank): the market level
    # (rank -1, asked first, so it wins a tie) and each lane in its order (an earlier lane wins a tie).
    # Each round compares the candidates' standing quotes and prices again only the one that won
    # (tests/sor/test_allocation_equivalence.py checks this against the plain greedy). There are a few
    # venues: a scan, not a heap, and the quotes in each lane's float fields, not in tuples - a resting
    # order of 50 lots was 50 rounds of tuples and boxed floats, most of a route's time.
    if left >= chunk:
        for v in venues:
            v.price(chunk, f_activity, f_penalty, f_lot)
        while left >= chunk:
            room = market_room()
            best: _Lane | None = None
            best_cost = taker_cost[level] if room > 0 else 0.0
            found = room > 0
            for v in venues:
                if v.step and (not found or v.cost < best_cost):
                    best, best_cost, found = v, v.cost, True
            if not found:
                break
            if best is None:
                take = min(left, room)
                take_market(take)
                left -= take
            else:
                left -= best.take()
                best.price(chunk, f_activity, f_penalty, f_lot)
    # Less than a chunk left: the plain greedy, one round at a time, each lane priced again for the
    # smaller step. (With a chunk or more left and no candidate, nothing can take more: no round.)
    while left > 0:
        step = min(chunk, left)
        room = market_room()
        best_cost = taker_cost[level] if room > 0 else 0.0
        found = room > 0
        best = None
        take = min(left, room)
        for v in venues:
            if v.step != step and not v.price(step, f_activity, f_penalty, f_lot):
                continue
            if not found or v.cost < best_cost:
                best_cost, best, take, found = v.cost, v, v.room, True
        if not found:
            break
        if best is None:
            take_market(take)
        else:
            best.take()
        left -= take
    return ({k: n * lot for k, n in market.items()},
            [(v.name, v.placed * lot) for v in venues if v.placed > 0])


class _Lane:
    """A passive venue in _allocate_lots: sizes in lots, the model in floats (see _Passive). Its standing
    quote - the next `step` lots' expected cost per share - is in plain fields (compiled, unboxed)."""

    __slots__ = ("name", "cap", "queue", "outflow", "gain", "placed", "tail", "step", "room", "cost", "after")

    def __init__(self, name: str, cap: int | None, queue: float, outflow: float, gain: float) -> None:
        self.name, self.queue, self.outflow, self.gain = name, queue, outflow, gain
        self.cap = -1 if cap is None else cap  # -1: no cap
        self.placed = 0
        self.tail = math.exp(-queue / outflow)
        # The quote: the step it was priced for (0: none), lots it can take, cost per share, tail after them
        self.step = 0
        self.room = 0
        self.cost = 0.0
        self.after = 0.0

    def price(self, step: int, activity: float, penalty: float, lot: float) -> bool:
        """Quote the next `step` lots (fewer if capped); False, and no quote, when it can take no more."""
        want = self.placed + step
        room = (want if self.cap < 0 else min(want, self.cap)) - self.placed
        if room <= 0:
            self.step = 0
            return False
        after = math.exp(-(self.queue + (self.placed + room) * lot) / self.outflow)
        expected_fill = activity * self.outflow * (self.tail - after)
        shares = room * lot
        self.step, self.room, self.after = step, room, after
        self.cost = (penalty * shares - (penalty + self.gain) * expected_fill) / shares
        return True

    def take(self) -> int:
        """Take the lots it is quoted for; returns them."""
        self.placed += self.room
        self.tail = self.after
        self.step = 0
        return self.room


def _only(req: RouteRequest, taken: Mapping[tuple[str, Decimal], Decimal]) -> RouteRequest:
    """The request with its contra side cut down to the quantities chosen, so the sweep builds exactly
    those children."""
    contra = tuple(Quote(q.venue, q.price, taken[(q.venue, q.price)]) for q in req.contra if (q.venue, q.price) in taken)
    return RouteRequest(
        req.symbol, req.side, req.qty, req.limit, req.ord_type, req.tif, req.nbbo, contra, req.same, req.venues,
        req.default_venue, req.lot, req.allow_ioc, req.urgency_bps, req.touch_activity,
    )


STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (SingleVenue(), ProRata(), Sweep(), ContKukanov(), PostOnly())
}


def strategy_named(name: str | None) -> Strategy | None:
    """The strategy for a FIX TargetStrategy(847) or config value: names above, any case, '-' or '_'."""
    if not name:
        return None
    return STRATEGIES.get(name.strip().lower().replace("-", "_"))
