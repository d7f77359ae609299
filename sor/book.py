"""The consolidated book: every venue's L2 levels per symbol, and the NBBO drawn from them.

Venues report full snapshots of their visible levels (best first); a snapshot replaces what the venue
showed before, so a missed incremental can never leave a ghost level behind. A venue that goes down
takes its quotes with it. Dark venues (the internal crossing book) are kept apart: their interest is
never displayed, so it neither sets the NBBO nor counts as a protected quote.

Owned by the engine thread like the rest of the router: no locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from oms.enums import Side
from oms.fastinit import fast_init

ZERO = Decimal(0)
TWO = Decimal(2)

Level = tuple[Decimal, Decimal]


@fast_init
@dataclass(frozen=True, slots=True)
class Quote:
    """One price level at one venue."""

    venue: str
    price: Decimal
    qty: Decimal


@fast_init
@dataclass(frozen=True, slots=True)
class NBBO:
    """National best bid and offer over the venues considered. A missing side is None (qty 0); `mid`
    needs both sides."""

    bid: Decimal | None
    bid_qty: Decimal
    ask: Decimal | None
    ask_qty: Decimal
    mid: Decimal | None

    @property
    def spread(self) -> Decimal | None:
        return self.ask - self.bid if self.bid is not None and self.ask is not None else None

    def touch(self, side: Side) -> Decimal | None:
        """The price an order of `side` would pay to take liquidity now (the far touch)."""
        return self.ask if side is Side.BUY else self.bid

    def near(self, side: Side) -> Decimal | None:
        """The price an order of `side` joins when it rests (the near touch)."""
        return self.bid if side is Side.BUY else self.ask


@fast_init
@dataclass(frozen=True, slots=True)
class ProtectedQuote:
    """A venue's top of book on one side (Reg NMS: only the best displayed price is protected)."""

    venue: str
    side: Side  # BUY = a bid, SELL = an offer
    price: Decimal
    qty: Decimal


def _clean(levels: Iterable[Level], descending: bool) -> tuple[Level, ...]:
    # Snapshots come from the wire: drop empty levels, merge duplicates, and sort ourselves rather than
    # trust the sender's order, because every strategy walks levels assuming best first.
    merged: dict[Decimal, Decimal] = {}
    for price, qty in levels:
        price, qty = Decimal(price), Decimal(qty)
        if qty > 0 and price > 0:
            merged[price] = merged.get(price, ZERO) + qty
    return tuple(sorted(merged.items(), reverse=descending))


_price = attrgetter("price")


class ConsolidatedBook:
    def __init__(self, dark: Set[str] = frozenset()) -> None:
        self.dark = frozenset(dark)
        # symbol -> venue -> (bids best first, asks best first)
        self._books: dict[str, dict[str, tuple[tuple[Level, ...], tuple[Level, ...]]]] = {}
        self.updates = 0
        # symbol -> (side, venues asked for) -> `levels`' answer: routing asks for both sides of a symbol's
        # book for every order, and a book changes far less often (dropped with the symbol's next update).
        self._levels: dict[str, dict[tuple[Side, frozenset[str] | None], tuple[Quote, ...]]] = {}

    # --- input ---------------------------------------------------------------------------------
    def update(self, venue: str, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace `venue`'s levels for `symbol` with this snapshot (prices and sizes as Decimal)."""
        clean_bids, clean_asks = _clean(bids, True), _clean(asks, False)
        venues = self._books.setdefault(symbol, {})
        if clean_bids or clean_asks:
            venues[venue] = (clean_bids, clean_asks)
        else:
            venues.pop(venue, None)
        self._levels.pop(symbol, None)
        self.updates += 1

    def drop_venue(self, venue: str) -> None:
        """The venue is down: whatever it showed is no longer there to trade against."""
        for venues in self._books.values():
            venues.pop(venue, None)
        self._levels.clear()
        self.updates += 1

    # --- queries -------------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted(s for s, venues in self._books.items() if venues)

    def venues(self, symbol: str) -> list[str]:
        return sorted(self._books.get(symbol, {}))

    def has_data(self, symbol: str, venues: Set[str] | None = None) -> bool:
        return any(self._lit(symbol, venues))

    def venue_levels(self, venue: str, symbol: str, side: Side) -> tuple[Level, ...]:
        """One venue's levels on one side of the book (BUY = bids), best first."""
        book = self._books.get(symbol, {}).get(venue)
        if book is None:
            return ()
        return book[0] if side is Side.BUY else book[1]

    def _lit(self, symbol: str, venues: Set[str] | None) -> list[str]:
        return sorted(v for v in self._books.get(symbol, {}) if v not in self.dark and (venues is None or v in venues))

    def levels(self, symbol: str, side: Side, venues: Set[str] | None = None) -> tuple[Quote, ...]:
        """Every lit level on one side of the book (BUY = bids) across `venues` (all when None), best price
        first; at one price, venues in name order so the result never depends on arrival order."""
        key = (side, frozenset(venues) if venues is not None else None)
        cached = self._levels.get(symbol)
        if cached is None:
            cached = self._levels[symbol] = {}
        quotes = cached.get(key)
        if quotes is None:
            books = self._books.get(symbol, {})
            at = 0 if side is Side.BUY else 1
            found = [Quote(venue, price, qty) for venue in self._lit(symbol, venues) for price, qty in books[venue][at]]
            # By price alone: the sort is stable (reverse too) and the quotes come in venue name order with one
            # level per price and venue, so ties stay in venue name order - the order (price, venue) gives.
            found.sort(key=_price, reverse=side is Side.BUY)
            quotes = cached[key] = tuple(found)
        return quotes

    def nbbo(self, symbol: str, venues: Set[str] | None = None) -> NBBO | None:
        """Best bid and offer over the lit `venues` (all when None); None when nobody quotes the symbol."""
        bid: Decimal | None = None
        ask: Decimal | None = None
        bid_qty = ask_qty = ZERO
        for venue in self._lit(symbol, venues):
            bids, asks = self._books[symbol][venue]
            if bids:
                px, qty = bids[0]
                if bid is None or px > bid:
                    bid, bid_qty = px, qty
                elif px == bid:
                    bid_qty += qty
            if asks:
                px, qty = asks[0]
                if ask is None or px < ask:
                    ask, ask_qty = px, qty
                elif px == ask:
                    ask_qty += qty
        if bid is None and ask is None:
            return None
        mid = (bid + ask) / TWO if bid is not None and ask is not None else None
        return NBBO(bid, bid_qty, ask, ask_qty, mid)

    def protected_quotes(self, symbol: str, venues: Set[str] | None = None) -> list[ProtectedQuote]:
        """Each lit venue's best bid and best offer: the quotes no execution may trade through."""
        out: list[ProtectedQuote] = []
        for venue in self._lit(symbol, venues):
            bids, asks = self._books[symbol][venue]
            if bids:
                out.append(ProtectedQuote(venue, Side.BUY, bids[0][0], bids[0][1]))
            if asks:
                out.append(ProtectedQuote(venue, Side.SELL, asks[0][0], asks[0][1]))
        return out
