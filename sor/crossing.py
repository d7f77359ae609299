"""Internal crossing rules: when and at what price a client order may trade against another client's
order resting on the internal book.

1. A cross happens only against a two-sided lit NBBO and only at a price P with bid <= P <= ask, so no
   protected venue quote is ever traded through (a buyer never pays more than the best offer, a seller
   never gets less than the best bid).
2. P also respects both limits: P <= the buyer's limit, P >= the seller's limit.
3. Within that range P is the point closest to the NBBO midpoint: the midpoint itself when both orders
   are marketable (buy limit >= ask, sell limit <= bid), else the limit that stops it short of the mid.
   Both sides get price improvement or at worst their own limit.
4. Orders of the same account never cross (self-match prevention; the internal venue cancels the
   resting order, the design's "cancel resting" rule, and the router does not aim crosses at it).

The internal venue (venues/internal.py) applies the same rules when it executes, because it is the
authority on what trades; this module is the router's side: finding contra interest worth an IOC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from oms.enums import Side
from sor.book import NBBO

ZERO = Decimal(0)
TWO = Decimal(2)


@dataclass(frozen=True, slots=True)
class Interest:
    """A resting order on the internal book: its limit, what is left of it, and whose it is."""

    price: Decimal
    qty: Decimal
    account: str = ""  # "" when unknown (then only the venue can tell a self-match)


@dataclass(frozen=True, slots=True)
class Cross:
    """An IOC to send to the internal venue: `qty` at limit `price` (the cross price of the last contra
    order it needs; each match executes at its own cross price, often better)."""

    price: Decimal
    qty: Decimal


def cross_price(buy_limit: Decimal | None, sell_limit: Decimal | None, bid: Decimal, ask: Decimal) -> Decimal | None:
    """The price a buy and a sell cross at under the NBBO (bid, ask), or None when none is allowed.
    None limits are market orders."""
    if bid > ask:
        return None  # a crossed lit market: no price is inside it
    lo = bid if sell_limit is None else max(bid, sell_limit)
    hi = ask if buy_limit is None else min(ask, buy_limit)
    if lo > hi:
        return None
    return min(max((bid + ask) / TWO, lo), hi)


def find_cross(
    side: Side,
    limit: Decimal | None,
    qty: Decimal,
    account: str,
    contra: Iterable[Interest],
    nbbo: NBBO | None,
) -> Cross | None:
    """How much of an order of `side` (limit None = market) can cross the internal `contra` interest
    now, taking the best-priced contra orders first, and the IOC limit that reaches them."""
    if nbbo is None or nbbo.bid is None or nbbo.ask is None or qty <= 0:
        return None
    bid, ask = nbbo.bid, nbbo.ask
    buy = side is Side.BUY
    usable: list[tuple[Decimal, Decimal, Decimal]] = []  # (contra limit, cross price, qty)
    for it in contra:
        if it.qty <= 0 or (account and it.account == account):
            continue
        px = cross_price(limit, it.price, bid, ask) if buy else cross_price(it.price, limit, bid, ask)
        if px is not None:
            usable.append((it.price, px, it.qty))
    # Best contra first (the venue's own priority), so the IOC's limit stays as close to the mid as it can.
    usable.sort(key=lambda u: (u[0] if buy else -u[0], u[1] if buy else -u[1]))
    left = qty
    worst: Decimal | None = None
    for _, px, avail in usable:
        if left <= 0:
            break
        take = min(avail, left)
        left -= take
        worst = px if worst is None else (max(worst, px) if buy else min(worst, px))
    if worst is None or left == qty:
        return None
    return Cross(worst, qty - left)
