"""Exposure bookkeeping: per-order records and the per-account / per-symbol aggregates the checks read.

Every aggregate is kept incrementally, so a check costs a few dictionary lookups however many orders
an account has open; `recompute()` rebuilds them from the records to prove they agree.

Definitions (per account, and per symbol within it):
- open quantity (buy / sell): the leaves of orders accepted and not done. An order whose leaves reach
  zero by fills stops counting as open; a bust gives the quantity back (the engine works it again).
- position: start-of-day position + signed fills (buys +, sells and short sells -).
- worst-case position in a symbol: max(position + open buys, open sells - position, 0), i.e. the largest
  absolute position the account could reach if every open order on one side filled.
- gross position of an account: the sum of its symbols' worst-case positions.
- open notional: sum of leaves x unit price; an order without a limit price is valued at the reference
  price it was checked against (fixed at acceptance: a moving market does not re-value it).
- filled notional today: sum of |fill qty| x fill price, both sides; a bust takes back what its fill
  added (never more than the order added today, so it cannot go negative across a day roll).

Records of done orders without fills are dropped at once; orders with fills today are kept until
`reset_day` so a bust or correction can be taken back exactly. After a restart the finished orders'
fills come as sums per account, symbol and side (`carry`), held as one done record each; when a
finished order is read back (a bust names it), `restore` moves its share into a record of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from oms.enums import OrdType, Side
from oms.risk.view import OrderView

ZERO = Decimal(0)


@dataclass(slots=True)
class SymbolExposure:
    position: Decimal = ZERO
    open_buy: Decimal = ZERO
    open_sell: Decimal = ZERO
    open_orders: int = 0
    start_of_day: Decimal = ZERO

    @property
    def worst(self) -> Decimal:
        return worst_position(self.position, self.open_buy, self.open_sell)


@dataclass(slots=True)
class AccountExposure:
    open_notional: Decimal = ZERO
    filled_notional: Decimal = ZERO
    gross_position: Decimal = ZERO
    symbols: dict[str, SymbolExposure] = field(default_factory=dict)

    @property
    def credit_used(self) -> Decimal:
        return self.open_notional + self.filled_notional


@dataclass(slots=True)
class OrderRecord:
    view: OrderView
    # Unit price the open quantity is valued at.
    px: Decimal
    leaves: Decimal
    # Today's fills, in the order's side; negative only for a bust of a fill from before `reset_day`.
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    done: bool = False


# Read-only stand-ins for "nothing yet", so checks never create entries for refused orders.
_NO_SYMBOL = SymbolExposure()
_NO_ACCOUNT = AccountExposure()


def _carried(account: str, symbol: str, side: Side) -> str:
    # Cannot be an order id (the engine's are "INSTANCE-n"), so it never meets one in `orders`.
    return f"\0carried {account} {symbol} {side.value}"


def worst_position(position: Decimal, open_buy: Decimal, open_sell: Decimal) -> Decimal:
    return max(position + open_buy, open_sell - position, ZERO)


class Exposure:
    def __init__(self) -> None:
        self.accounts: dict[str, AccountExposure] = {}
        self.orders: dict[str, OrderRecord] = {}

    # --- reads (never create) ----------------------------------------------------------------
    def account(self, account: str) -> AccountExposure:
        return self.accounts.get(account, _NO_ACCOUNT)

    def symbol(self, account: str, symbol: str) -> SymbolExposure:
        acct = self.accounts.get(account)
        if acct is None:
            return _NO_SYMBOL
        return acct.symbols.get(symbol, _NO_SYMBOL)

    # --- writes ------------------------------------------------------------------------------
    def _slot(self, account: str, symbol: str) -> tuple[AccountExposure, SymbolExposure]:
        acct = self.accounts.get(account)
        if acct is None:
            acct = self.accounts[account] = AccountExposure()
        sx = acct.symbols.get(symbol)
        if sx is None:
            sx = acct.symbols[symbol] = SymbolExposure()
        return acct, sx

    @staticmethod
    def _shift(acct: AccountExposure, sx: SymbolExposure, side: Side, d_open: Decimal, d_position: Decimal,
               old_leaves: Decimal, new_leaves: Decimal) -> None:
        # The gross aggregate follows the symbol's worst case, so take it before and after each change.
        before = sx.worst
        if side is Side.BUY:
            sx.open_buy += d_open
        else:
            sx.open_sell += d_open
        sx.position += d_position
        acct.gross_position += sx.worst - before
        sx.open_orders += (new_leaves > 0) - (old_leaves > 0)

    def accept(self, view: OrderView, px: Decimal) -> None:
        if view.order_id in self.orders:
            return  # a repeated acceptance (replayed on recovery) must not count twice
        acct, sx = self._slot(view.account, view.symbol)
        self.orders[view.order_id] = OrderRecord(view, px, view.qty)
        acct.open_notional += view.qty * px
        self._shift(acct, sx, view.side, view.qty, ZERO, ZERO, view.qty)

    def fill(self, view: OrderView, qty: Decimal, px: Decimal) -> None:
        """A fill (qty > 0) or its bust (qty < 0)."""
        rec = self.orders.get(view.order_id)
        if rec is None:
            # A fill of an order risk does not know (or no longer knows, after a day roll): it still moves
            # the position; held as a done record so the aggregates stay a sum over records.
            rec = self.orders[view.order_id] = OrderRecord(view, px, ZERO, done=True)
        v = rec.view
        acct, sx = self._slot(v.account, v.symbol)
        old = rec.leaves
        new = old if rec.done else max(old - qty, ZERO)
        notional = qty * px if qty >= 0 else -min(-qty * px, rec.filled_notional)
        rec.filled_qty += qty
        rec.filled_notional += notional
        acct.filled_notional += notional
        rec.leaves = new
        acct.open_notional += (new - old) * rec.px
        self._shift(acct, sx, v.side, new - old, qty if v.side is Side.BUY else -qty, old, new)

    def done(self, view: OrderView) -> None:
        rec = self.orders.get(view.order_id)
        if rec is None or rec.done:
            return
        v = rec.view
        acct, sx = self._slot(v.account, v.symbol)
        old = rec.leaves
        acct.open_notional -= old * rec.px
        self._shift(acct, sx, v.side, -old, ZERO, old, ZERO)
        rec.leaves = ZERO
        rec.done = True
        if not rec.filled_qty and not rec.filled_notional:
            del self.orders[view.order_id]

    def replace(self, new: OrderView, cum_qty: Decimal, px: Decimal) -> None:
        rec = self.orders.get(new.order_id)
        new_leaves = max(new.qty - cum_qty, ZERO)
        if rec is None:
            rec = self.orders[new.order_id] = OrderRecord(new, px, ZERO)
        if rec.done:
            rec.view = new
            return
        acct, sx = self._slot(new.account, new.symbol)
        old = rec.leaves
        acct.open_notional += new_leaves * px - old * rec.px
        self._shift(acct, sx, new.side, new_leaves - old, ZERO, old, new_leaves)
        rec.view, rec.px, rec.leaves = new, px, new_leaves

    def carry(self, account: str, symbol: str, side: Side, qty: Decimal, notional: Decimal) -> None:
        """Fills of finished orders that are not held one by one (a restart leaves them in the journal):
        position and filled notional move as for their fills; nothing is open."""
        key = _carried(account, symbol, side)
        rec = self.orders.get(key)
        if rec is None:
            view = OrderView(key, "", account, symbol, side, OrdType.LIMIT, ZERO, None)
            rec = self.orders[key] = OrderRecord(view, ZERO, ZERO, done=True)
        acct, sx = self._slot(account, symbol)
        rec.filled_qty += qty
        rec.filled_notional += notional
        acct.filled_notional += notional
        self._shift(acct, sx, side, ZERO, qty if side is Side.BUY else -qty, ZERO, ZERO)

    def restore(self, view: OrderView, px: Decimal, qty: Decimal, notional: Decimal) -> None:
        """A finished order read back: the fills `carry` counted for it get a record of their own (as if
        it had been held all along), so a bust takes back exactly what it added. Aggregates do not move."""
        key = _carried(view.account, view.symbol, view.side)
        rec = self.orders.get(key)
        if rec is None or view.order_id in self.orders or (not qty and not notional):
            return  # nothing carried (a day roll forgot it, as it forgets a held finished order)
        rec.filled_qty -= qty
        rec.filled_notional -= notional
        self.orders[view.order_id] = OrderRecord(view, px, ZERO, qty, notional, done=True)
        if not rec.filled_qty and not rec.filled_notional:
            del self.orders[key]

    def reset_day(self) -> None:
        """Start a new trading day: positions carry over, today's fills and closed orders are forgotten."""
        for oid, rec in list(self.orders.items()):
            if rec.leaves > 0:
                rec.filled_qty = rec.filled_notional = ZERO
            else:
                del self.orders[oid]
        for acct in self.accounts.values():
            acct.filled_notional = ZERO
            for name, sx in list(acct.symbols.items()):
                sx.start_of_day = sx.position
                if not sx.position and not sx.open_orders:
                    del acct.symbols[name]

    # --- proof -------------------------------------------------------------------------------
    def recompute(self) -> dict[str, AccountExposure]:
        """The aggregates rebuilt from the order records and start-of-day positions alone."""
        out: dict[str, AccountExposure] = {}
        for name, acct in self.accounts.items():
            fresh = out[name] = AccountExposure()
            for symbol, sx in acct.symbols.items():
                fresh.symbols[symbol] = SymbolExposure(position=sx.start_of_day, start_of_day=sx.start_of_day)
        for rec in self.orders.values():
            v = rec.view
            acct = out.setdefault(v.account, AccountExposure())
            sx = acct.symbols.setdefault(v.symbol, SymbolExposure())
            acct.open_notional += rec.leaves * rec.px
            acct.filled_notional += rec.filled_notional
            sx.position += rec.filled_qty if v.side is Side.BUY else -rec.filled_qty
            if v.side is Side.BUY:
                sx.open_buy += rec.leaves
            else:
                sx.open_sell += rec.leaves
            sx.open_orders += rec.leaves > 0
        for acct in out.values():
            acct.gross_position = sum((sx.worst for sx in acct.symbols.values()), ZERO)
        return out

