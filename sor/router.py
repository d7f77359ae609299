"""The smart order router: `oms.ports.Router` over the consolidated book, venue profiles and strategies.

Per call of `route(order, qty, venues_up)`:

1. ExDestination(100) set: everything goes to that venue, on the order's own terms (or nowhere if it
   is down or cannot take the order type).
2. Internal cross: if the internal venue is up and holds another account's contra interest that may
   cross (sor/crossing.py), an IOC to it for that quantity at the cross price.
3. No lit market data for the symbol: the rest goes whole to the symbol's configured venue, as the
   static router did, so the engine keeps working without market data.
4. FOK: one child, whole, to one venue (splitting could fill some and not all).
5. Otherwise the order's strategy plans the rest: TargetStrategy(847) if it names one, else the
   account's configured strategy, else the default.
6. Every plan is checked against the hard rules before it leaves: never more than `qty` in total,
   never a price through the order's limit, never a venue that is down, cannot take the order type,
   IOC, size, or (post-only venues) a taking order.

Marketable quantity goes out as IOC limits at the levels' prices. What an IOC misses comes back as
unrouted quantity and the engine calls `route` again against the refreshed book. Re-routing is
bounded per parent: after `max_ioc_misses` missed IOCs the router stops sweeping (the order goes on its
own terms to one venue, or rests), and a parent never gets more than `max_children` children.

All state here (the book) is owned by the engine thread: `on_book`/`on_venue_down` and `route` are
called from it, so nothing is locked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal
from typing import Any

from oms.enums import OrdType, Side, TimeInForce
from oms.model import Order
from oms.ports import ChildPlan
from sor.book import NBBO, ConsolidatedBook, Level
from sor.crossing import Interest, find_cross
from sor.strategies import STRATEGIES, RouteRequest, Strategy, single_venue, strategy_named
from sor.venues import VenueProfile, profiles_from_config

ZERO = Decimal(0)
INTERNAL = "INTERNAL"
# The benchmark's winner on shortfall (bench/routing_bench.py; docs/routing.md has the table).
DEFAULT_STRATEGY = "cont_kukanov"
_TAKING_TIFS = (TimeInForce.IOC, TimeInForce.FOK)


class SmartRouter:
    def __init__(
        self,
        venue_by_symbol: Mapping[str, str],
        profiles: Mapping[str, VenueProfile] | None = None,
        *,
        default_strategy: str = DEFAULT_STRATEGY,
        strategy_by_account: Mapping[str, str] | None = None,
        internal_venue: str | None = INTERNAL,
        crossing: bool = True,
        internal_rest_accounts: Iterable[str] = (),
        lot_size: Decimal = Decimal(1),
        max_children: int = 50,
        max_ioc_misses: int = 6,
        urgency_bps: Decimal = Decimal(5),
        touch_activity: Decimal = Decimal("0.5"),
    ) -> None:
        self.venue_by_symbol = dict(venue_by_symbol)
        self.profiles = dict(profiles or {})
        self.default_strategy = _strategy(default_strategy, "default_strategy")
        self.strategy_by_account = {
            acc: _strategy(name, f"strategy_by_account.{acc}") for acc, name in (strategy_by_account or {}).items()
        }
        self.internal_venue = internal_venue
        self.crossing = crossing and internal_venue is not None
        self.internal_rest_accounts = frozenset(internal_rest_accounts)
        if lot_size <= 0 or max_children < 1 or max_ioc_misses < 0:
            raise ValueError("lot_size and max_children must be positive, max_ioc_misses not negative")
        self.lot_size = lot_size
        self.max_children = max_children
        self.max_ioc_misses = max_ioc_misses
        self.urgency_bps = urgency_bps
        if not 0 <= touch_activity <= 1:
            raise ValueError("touch_activity is a probability: 0..1")
        self.touch_activity = touch_activity
        self.book = ConsolidatedBook(dark=frozenset({internal_venue}) if internal_venue else frozenset())
        # Internal resting interest by symbol: (bids, asks), best first.
        self.internal: dict[str, tuple[tuple[Interest, ...], tuple[Interest, ...]]] = {}

    @classmethod
    def from_config(
        cls,
        venue_by_symbol: Mapping[str, str],
        sor: Mapping[str, Any] | None = None,
        venue_profiles: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SmartRouter:
        """From the `[sor]` and `[venue_profiles.*]` tables of fixoms.toml (see docs/routing.md)."""
        cfg = dict(sor or {})
        known = {
            "default_strategy", "strategy_by_account", "internal_venue", "crossing", "internal_rest_accounts",
            "lot_size", "max_children", "max_ioc_misses", "urgency_bps", "touch_activity",
        }
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"sor: unknown setting(s) {', '.join(sorted(unknown))}")
        internal = cfg.get("internal_venue", INTERNAL)
        return cls(
            venue_by_symbol,
            profiles_from_config(venue_profiles or {}),
            default_strategy=str(cfg.get("default_strategy", DEFAULT_STRATEGY)),
            strategy_by_account={str(k): str(v) for k, v in dict(cfg.get("strategy_by_account", {})).items()},
            internal_venue=str(internal) if internal else None,
            crossing=bool(cfg.get("crossing", True)),
            internal_rest_accounts=[str(a) for a in cfg.get("internal_rest_accounts", [])],
            lot_size=Decimal(str(cfg.get("lot_size", 1))),
            max_children=int(cfg.get("max_children", 50)),
            max_ioc_misses=int(cfg.get("max_ioc_misses", 6)),
            urgency_bps=Decimal(str(cfg.get("urgency_bps", 5))),
            touch_activity=Decimal(str(cfg.get("touch_activity", "0.5"))),
        )

    # --- market data (engine thread) ---------------------------------------------------------------
    def on_book(self, venue: str, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """A venue's full visible book for `symbol` after a change: (price, size) levels, best first."""
        if venue == self.internal_venue:
            self.on_internal_book(symbol, [(p, q, "") for p, q in bids], [(p, q, "") for p, q in asks])
            return
        self.book.update(venue, symbol, bids, asks)

    def on_internal_book(
        self,
        symbol: str,
        bids: Iterable[tuple[Decimal, Decimal, str]],
        asks: Iterable[tuple[Decimal, Decimal, str]],
    ) -> None:
        """The internal venue's resting interest for `symbol`: (limit, leaves, account) per order."""
        b = tuple(sorted((Interest(p, q, a) for p, q, a in bids if q > 0), key=lambda i: -i.price))
        a = tuple(sorted((Interest(p, q, a) for p, q, a in asks if q > 0), key=lambda i: i.price))
        if b or a:
            self.internal[symbol] = (b, a)
        else:
            self.internal.pop(symbol, None)

    def on_venue_down(self, venue: str) -> None:
        if venue == self.internal_venue:
            self.internal.clear()
        self.book.drop_venue(venue)

    def nbbo(self, symbol: str) -> NBBO | None:
        """The lit NBBO over every venue with data (the arrival mid for TCA is `nbbo(...).mid`)."""
        return self.book.nbbo(symbol)

    def reference_prices(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """(bid, ask) of the lit NBBO: what the internal venue must cross inside of."""
        nbbo = self.book.nbbo(symbol)
        return (nbbo.bid, nbbo.ask) if nbbo else (None, None)

    # --- routing ---------------------------------------------------------------------------------
    def profile(self, venue: str) -> VenueProfile:
        known = self.profiles.get(venue)
        if known is not None:
            return known
        if venue == self.internal_venue:
            # The crossing book takes no amends (venues.internal): replaces there cancel and re-route.
            return VenueProfile(venue, order_types=frozenset({OrdType.LIMIT, OrdType.MARKET}), amend=False)
        return VenueProfile(venue)

    def can_amend(self, venue: str) -> bool:
        """Whether a working child at `venue` may be amended (the decider's question, see oms.ports.Router)."""
        return venue != self.internal_venue and self.profile(venue).amend

    def strategy_for(self, order: Order) -> Strategy:
        return (
            strategy_named(order.target_strategy)
            or self.strategy_by_account.get(order.account)
            or self.default_strategy
        )

    def route(self, order: Order, qty: Decimal, venues_up: Set[str]) -> list[ChildPlan]:
        side, ord_type = order.side, order.child_ord_type
        if side is None or order.ord_type is None or order.is_terminal:
            return []
        qty = min(qty, order.unrouted_qty)
        limit = order.price if ord_type is not OrdType.MARKET else None
        if qty <= 0 or (ord_type is not OrdType.MARKET and (limit is None or limit <= 0)):
            return []
        tif = order.child_tif
        up = frozenset(venues_up)
        if order.ex_destination:
            plan = ChildPlan(order.ex_destination, qty, limit, ord_type, tif)
            return self._enforce(side, limit, qty, [plan], up)
        if len(order.children) >= self.max_children:
            return []
        # Only venues that publish a book for the symbol (or are its configured venue) get its flow: a
        # venue without a quote may not list the symbol at all.
        quoting = set(self.book.venues(order.symbol)) | {self.venue_by_symbol.get(order.symbol, "")}
        lit = {v: self.profile(v) for v in sorted(up) if v != self.internal_venue and v in quoting}
        nbbo = self.book.nbbo(order.symbol, lit.keys())
        plans: list[ChildPlan] = []
        left = qty
        cross = self._cross(order, side, limit, left, tif, up, nbbo)
        if cross is not None:
            plans.append(cross)
            left -= cross.qty
        if left > 0:
            if nbbo is None or ord_type not in (OrdType.LIMIT, OrdType.MARKET):
                plans += self._static(order, left, limit, ord_type, tif)
            else:
                req = self._request(order, side, left, limit, ord_type, tif, nbbo, lit)
                if tif is TimeInForce.FOK:
                    plans += self._fok(req)
                elif self._rests_internally(order, up) and not req.marketable():
                    assert self.internal_venue is not None
                    plans.append(ChildPlan(self.internal_venue, left, limit, OrdType.LIMIT, tif))
                else:
                    planned = self.strategy_for(order).plan(req)
                    if ord_type is OrdType.MARKET and _market_child_missed(order):
                        # The venue had nothing for our last market child: do not keep sending it more.
                        planned = [p for p in planned if p.ord_type is not OrdType.MARKET]
                    plans += planned
        return self._enforce(side, limit, qty, plans, up)

    def _request(
        self, order: Order, side: Side, qty: Decimal, limit: Decimal | None, ord_type: OrdType, tif: TimeInForce,
        nbbo: NBBO, lit: Mapping[str, VenueProfile],
    ) -> RouteRequest:
        buy = side is Side.BUY
        contra = self.book.levels(order.symbol, Side.SELL if buy else Side.BUY, lit.keys())
        same = self.book.levels(order.symbol, Side.BUY if buy else Side.SELL, lit.keys())
        misses = sum(
            1 for ch in order.children.values()
            if ch.time_in_force is TimeInForce.IOC and ch.done and ch.cum_qty < ch.qty
        )
        return RouteRequest(
            order.symbol, Side.BUY if buy else Side.SELL, qty, limit, ord_type, tif, nbbo, contra,
            same, lit, self.venue_by_symbol.get(order.symbol), self.lot_size,
            allow_ioc=misses < self.max_ioc_misses, urgency_bps=self.urgency_bps,
            touch_activity=self.touch_activity,
        )

    def _cross(
        self, order: Order, side: Side, limit: Decimal | None, qty: Decimal, tif: TimeInForce, up: Set[str],
        nbbo: NBBO | None,
    ) -> ChildPlan | None:
        venue = self.internal_venue
        if not self.crossing or venue is None or venue not in up or tif is TimeInForce.FOK:
            return None
        interest = self.internal.get(order.symbol)
        if interest is None:
            return None
        contra = interest[1] if side is Side.BUY else interest[0]
        cross = find_cross(Side.BUY if side is Side.BUY else Side.SELL, limit, qty, order.account, contra, nbbo)
        if cross is None:
            return None
        return ChildPlan(venue, cross.qty, cross.price, OrdType.LIMIT, TimeInForce.IOC)

    def _rests_internally(self, order: Order, up: Set[str]) -> bool:
        return (
            self.internal_venue is not None
            and self.internal_venue in up
            and order.child_tif not in _TAKING_TIFS
            and ("*" in self.internal_rest_accounts or order.account in self.internal_rest_accounts)
        )

    def _static(
        self, order: Order, qty: Decimal, limit: Decimal | None, ord_type: OrdType, tif: TimeInForce,
    ) -> list[ChildPlan]:
        venue = self.venue_by_symbol.get(order.symbol)
        return [ChildPlan(venue, qty, limit, ord_type, tif)] if venue else []

    def _fok(self, req: RouteRequest) -> list[ChildPlan]:
        """All or none needs one venue: the one showing the most size within the limit, if any covers
        the order, else the best-priced one (the venue may hold more than it shows)."""
        sizes: dict[str, Decimal] = {}
        for q in req.takeable():
            sizes[q.venue] = sizes.get(q.venue, ZERO) + q.qty
        capable = [
            p for p in req.venues.values()
            if p.accepts(req.ord_type, req.qty, ioc=True) and not p.post_only and p.name in sizes
        ]
        if not capable:
            plans = single_venue(req)
            return [dataclasses.replace(p, time_in_force=TimeInForce.FOK) for p in plans if p.qty == req.qty]
        best = min(capable, key=lambda p: (-sizes[p.name], p.taker_fee, p.name))
        return [ChildPlan(best.name, req.qty, req.limit, req.ord_type, TimeInForce.FOK)]

    def _enforce(
        self, side: Side, limit: Decimal | None, qty: Decimal, plans: Iterable[ChildPlan], up: Set[str],
    ) -> list[ChildPlan]:
        """The hard rules, whatever a strategy said: a plan that breaks one is cut down or dropped."""
        buy = side is Side.BUY
        out: list[ChildPlan] = []
        left = qty
        for p in plans:
            if left <= 0:
                break
            if p.venue not in up:
                continue
            prof = self.profile(p.venue)
            taking = p.time_in_force in _TAKING_TIFS or p.ord_type is OrdType.MARKET
            if not prof.accepts(p.ord_type, ioc=p.time_in_force in _TAKING_TIFS) or (taking and prof.post_only):
                continue
            if p.ord_type is OrdType.MARKET:
                if limit is not None:
                    continue  # a market child would ignore the parent's limit
                p = dataclasses.replace(p, price=None)
            elif p.price is None or p.price <= 0:
                continue
            if p.price is not None and limit is not None and (p.price > limit if buy else p.price < limit):
                continue
            q = prof.capacity(min(p.qty, left))
            if q <= 0 or (q < p.qty and p.time_in_force is TimeInForce.FOK):
                continue  # all-or-none cannot be cut down
            out.append(p if q == p.qty else dataclasses.replace(p, qty=q))
            left -= q
        return out


def _strategy(name: str, where: str) -> Strategy:
    found = strategy_named(name)
    if found is None:
        raise ValueError(f"sor.{where}: unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
    return found


def _market_child_missed(order: Order) -> bool:
    return any(
        ch.ord_type is OrdType.MARKET and ch.done and ch.cum_qty < ch.qty for ch in order.children.values()
    )
