"""The pre-trade checks, one small named unit each.

A check takes exactly the values it compares (a limit from `RiskLimits`/`RiskConfig`, the order's
terms, an exposure aggregate) and returns None or a `Refusal` whose text names the limit, its
configured value and the value that broke it ("max order quantity 100000 exceeded: OrderQty 150000"). Checks never change exposure; the two that keep a
time window (duplicate content, order rate) say in their docstring what they record and when.

For a replace the engine passes the increment (extra leaves quantity, extra notional) where the limit
is on an aggregate, and the new terms where the limit is on the order itself.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, InvalidOperation

from oms.enums import OrdRejReason, OrdType, Side
from oms.risk.exposure import AccountExposure, SymbolExposure, worst_position
from oms.risk.limits import fmt
from oms.risk.state import Scope, TradingState
from oms.validation import Refusal

# Orders that execute at whatever the market gives: subject to `market_orders_allowed`.
MARKET_LIKE = frozenset({OrdType.MARKET, OrdType.STOP})
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")

DuplicateKey = tuple[str, str, str, Side, Decimal, Decimal | None, OrdType]


def _pct(fraction: Decimal) -> str:
    try:
        return fmt((fraction * _HUNDRED).quantize(_CENT))
    except InvalidOperation:  # more digits than the context holds: only the text needs it
        return f"{float(fraction * _HUNDRED):.4g}"


class Check:
    """A named pre-trade check. `limits` names the configuration keys it reads (for `risk show`)."""

    __slots__ = ()
    name: str
    reason: OrdRejReason
    limits: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "reason": int(self.reason), "limits": list(self.limits)}


class TradingStateCheck(Check):
    """HALTED refuses whatever adds risk; REDUCING lets through only what brings the account's position in
    the symbol towards flat, counting the open orders on the same side (a sell when long, a buy when
    short, never beyond flat)."""

    __slots__ = ()
    name = "trading state"
    reason = OrdRejReason.OTHER
    limits = ("state firm", "state account:NAME", "state session:NAME")

    def __call__(self, state: TradingState, where: Scope, side: Side, qty: Decimal, adds_risk: bool,
                 sx: SymbolExposure) -> Refusal | None:
        if state is TradingState.ACTIVE or not adds_risk:
            return None
        if state is TradingState.HALTED:
            # A halted session is what `fixoms sessions hold` sets: say so, the client's desk asks why.
            held = " the session is held by an operator:" if where.kind == "session" else ""
            return Refusal(self.reason, f"trading state HALTED ({where}):{held} orders that add risk are refused")
        if side is Side.BUY:
            room, opened, word = -sx.position - sx.open_buy, sx.open_buy, "buys"
        else:
            room, opened, word = sx.position - sx.open_sell, sx.open_sell, "sells"
        if qty <= room:
            return None
        return Refusal(
            self.reason,
            f"trading state REDUCING ({where}) allows only position-reducing orders: position "
            f"{fmt(sx.position)}, open {word} {fmt(opened)}, order {word[:-1]} {fmt(qty)}",
        )


# The design's table gives OrdRejReason 2 for a restricted symbol (FIX 4.4 names 2 "Exchange closed").
# design.md lists 2 "(unknown/restricted symbol)", but 2 is Exchange closed in FIX; the intent is the
# symbol code, so restricted symbols go out as 1 (Unknown symbol) with a Text naming the restriction.
RESTRICTED_REASON = OrdRejReason.UNKNOWN_SYMBOL


class RestrictedSymbol(Check):
    __slots__ = ()
    name = "restricted symbol"
    reason = RESTRICTED_REASON
    limits = ("restricted (firm)", "restricted (account)")

    def __call__(self, symbol: str, firm: frozenset[str], account_list: frozenset[str],
                 account: str) -> Refusal | None:
        if symbol in firm:
            return Refusal(self.reason, f"restricted symbol {symbol} (firm list)")
        if symbol in account_list:
            return Refusal(self.reason, f"restricted symbol {symbol} (account {account} list)")
        return None


class MarketOrders(Check):
    __slots__ = ()
    name = "market orders"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("market_orders_allowed",)

    def __call__(self, allowed: bool, account: str, ord_type: OrdType) -> Refusal | None:
        if allowed or ord_type not in MARKET_LIKE:
            return None
        return Refusal(self.reason, f"market orders not allowed for account {account} "
                                    f"(market_orders_allowed false): OrdType {ord_type.name}")


class PriceBounds(Check):
    __slots__ = ()
    name = "price bounds"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("min_price", "max_price")

    def __call__(self, min_price: Decimal | None, max_price: Decimal | None,
                 price: Decimal | None) -> Refusal | None:
        if price is None:
            return None
        if min_price is not None and price < min_price:
            return Refusal(self.reason, f"min price {fmt(min_price)} not met: Price {fmt(price)}")
        if max_price is not None and price > max_price:
            return Refusal(self.reason, f"max price {fmt(max_price)} exceeded: Price {fmt(price)}")
        return None


class PriceCollar(Check):
    """A limit price more than the collar away from the reference (either side) is refused. Without a
    reference a priced order passes; an unpriced one is refused, since nothing could value it."""

    __slots__ = ()
    name = "price collar"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("price_collar",)

    def __call__(self, collar: Decimal | None, ord_type: OrdType, price: Decimal | None,
                 reference: Decimal | None) -> Refusal | None:
        if price is None:
            if reference is None:
                return Refusal(self.reason, f"no reference price for {ord_type.name.lower()} order")
            return None
        if collar is None or reference is None:
            return None
        distance = abs(price - reference)
        if distance <= reference * collar:
            return None
        return Refusal(self.reason, f"price collar {_pct(collar)}% exceeded: Price {fmt(price)} is "
                                    f"{_pct(distance / reference)}% from reference {fmt(reference)}")


class MaxOrderQty(Check):
    __slots__ = ()
    name = "max order quantity"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("max_order_qty",)

    def __call__(self, limit: Decimal | None, qty: Decimal) -> Refusal | None:
        if limit is None or qty <= limit:
            return None
        return Refusal(self.reason, f"max order quantity {fmt(limit)} exceeded: OrderQty {fmt(qty)}")


class MaxOrderNotional(Check):
    __slots__ = ()
    name = "max order notional"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("max_order_notional",)

    def __call__(self, limit: Decimal | None, qty: Decimal, px: Decimal, notional: Decimal) -> Refusal | None:
        if limit is None or notional <= limit:
            return None
        return Refusal(self.reason, f"max order notional {fmt(limit)} exceeded: notional {fmt(notional)} "
                                    f"(OrderQty {fmt(qty)} x price {fmt(px)})")


class DuplicateOrder(Check):
    """Same session, account, symbol, side, quantity, price and type as an order that passed risk less
    than `duplicate_window` seconds ago. Only orders that passed every check are recorded (`record`):
    re-sending an order that risk refused is a retry, not a duplicate."""

    __slots__ = ("_seen", "_expiry")
    name = "duplicate order"
    reason = OrdRejReason.DUPLICATE_ORDER
    limits = ("duplicate_window",)

    def __init__(self) -> None:
        self._seen: dict[DuplicateKey, tuple[float, str]] = {}
        self._expiry: deque[tuple[float, DuplicateKey]] = deque()

    def _expire(self, now: float, window: float) -> None:
        horizon = now - window
        expiry, seen = self._expiry, self._seen
        while expiry and expiry[0][0] <= horizon:
            at, key = expiry.popleft()
            hit = seen.get(key)
            # The key may have been recorded again since (after it had expired once): keep the newer.
            if hit is not None and hit[0] <= horizon:
                del seen[key]

    def __call__(self, window: float, key: DuplicateKey, now: float) -> Refusal | None:
        if window <= 0:
            return None
        self._expire(now, window)
        hit = self._seen.get(key)
        if hit is None:
            return None
        at, order_id = hit
        return Refusal(self.reason, f"duplicate order within {window:g}s: same session, account, symbol, "
                                    f"side, qty, price and type as order {order_id} {now - at:.3f}s ago")

    def record(self, window: float, key: DuplicateKey, now: float, order_id: str) -> None:
        if window <= 0:
            return
        self._seen[key] = (now, order_id)
        self._expiry.append((now, key))

    def forget(self, order_ids: set[str]) -> None:
        """Orders recorded here that were never accepted after all (their batch was not committed)."""
        for key in [k for k, (_, order_id) in self._seen.items() if order_id in order_ids]:
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)


class OrderRate(Check):
    """Requests per session in the last second (sliding window). `record` is called for every attempt
    before any check runs, refused or not: a client hammering the gateway stays throttled."""

    __slots__ = ("name", "limits", "_what", "_times")
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    WINDOW = 1.0

    def __init__(self, what: str, limit_key: str) -> None:
        self.name = f"{what} rate"
        self.limits = (limit_key,)
        self._what = what
        self._times: dict[str, deque[float]] = {}

    def record(self, session: str, now: float) -> int:
        times = self._times.get(session)
        if times is None:
            times = self._times[session] = deque()
        times.append(now)
        horizon = now - self.WINDOW
        while times[0] <= horizon:
            times.popleft()
        return len(times)

    def count(self, session: str, now: float) -> int:
        times = self._times.get(session)
        if times is None:
            return 0
        horizon = now - self.WINDOW
        return sum(1 for t in times if t > horizon)

    def sessions(self) -> list[str]:
        return sorted(self._times)

    def __call__(self, limit: int | None, session: str, count: int) -> Refusal | None:
        if limit is None or count <= limit:
            return None
        return Refusal(self.reason, f"max {self._what} rate {limit}/s exceeded: session {session} sent "
                                    f"{count} in the last {self.WINDOW:g}s")


class OpenOrders(Check):
    __slots__ = ()
    name = "max open orders"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("max_open_orders",)

    def __call__(self, limit: int | None, account: str, symbol: str, open_orders: int) -> Refusal | None:
        if limit is None or open_orders < limit:
            return None
        return Refusal(self.reason, f"max open orders {limit} reached: account {account} has {open_orders} "
                                    f"open in {symbol}")


class NetPosition(Check):
    """The account's worst-case position in the symbol on the side the order grows: position plus open
    buys plus the order for a buy, open sells plus the order minus position for a sell."""

    __slots__ = ()
    name = "max position"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("max_position",)

    def __call__(self, limit: Decimal | None, account: str, symbol: str, side: Side, qty: Decimal,
                 sx: SymbolExposure) -> Refusal | None:
        if limit is None:
            return None
        if side is Side.BUY:
            long = sx.position + sx.open_buy + qty
            if long <= limit:
                return None
            return Refusal(self.reason, f"max position {fmt(limit)} exceeded: account {account} {symbol} long "
                                        f"{fmt(long)} (position {fmt(sx.position)} + open buys "
                                        f"{fmt(sx.open_buy)} + order {fmt(qty)})")
        short = sx.open_sell + qty - sx.position
        if short <= limit:
            return None
        return Refusal(self.reason, f"max position {fmt(limit)} exceeded: account {account} {symbol} short "
                                    f"{fmt(short)} (open sells {fmt(sx.open_sell)} + order {fmt(qty)} - "
                                    f"position {fmt(sx.position)})")


class GrossPosition(Check):
    """The sum over the account's symbols of the worst-case absolute position. An order that does not
    raise its symbol's worst case passes even when the account is over (e.g. after the limit was cut)."""

    __slots__ = ()
    name = "max gross position"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("max_gross_position",)

    def __call__(self, limit: Decimal | None, account: str, symbol: str, side: Side, qty: Decimal,
                 sx: SymbolExposure, gross: Decimal) -> Refusal | None:
        if limit is None:
            return None
        before = sx.worst
        if side is Side.BUY:
            after = worst_position(sx.position, sx.open_buy + qty, sx.open_sell)
        else:
            after = worst_position(sx.position, sx.open_buy, sx.open_sell + qty)
        if after <= before:
            return None
        total = gross + after - before
        if total <= limit:
            return None
        return Refusal(self.reason, f"max gross position {fmt(limit)} exceeded: account {account} gross "
                                    f"{fmt(total)} ({symbol} worst case {fmt(before)} -> {fmt(after)})")


class CreditLimit(Check):
    """Open notional (accepted orders not done, pending ones included) + filled-today notional of the
    account, both sides, plus what the order adds. A replace's increment counts from `on_replaced`."""

    __slots__ = ()
    name = "credit limit"
    reason = OrdRejReason.ORDER_EXCEEDS_LIMIT
    limits = ("credit_limit",)

    def __call__(self, limit: Decimal | None, account: str, acct: AccountExposure,
                 notional: Decimal) -> Refusal | None:
        if limit is None:
            return None
        total = acct.open_notional + acct.filled_notional + notional
        if total <= limit:
            return None
        return Refusal(self.reason, f"credit limit {fmt(limit)} exceeded: account {account} open "
                                    f"{fmt(acct.open_notional)} + filled today {fmt(acct.filled_notional)} + "
                                    f"order {fmt(notional)} = {fmt(total)}")
