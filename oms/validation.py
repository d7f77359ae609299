"""Basic order validation: the checks any order must pass before risk. Each failure names its rule."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.commands import NewOrder
from oms.enums import OrdRejReason, OrdType, TimeInForce

SUPPORTED_TYPES = frozenset({OrdType.MARKET, OrdType.LIMIT})
SUPPORTED_TIF = frozenset({TimeInForce.DAY, TimeInForce.IOC, TimeInForce.GTC, TimeInForce.FOK})
MAX_QTY = Decimal(1_000_000_000)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: OrdRejReason
    text: str


def validate_new(cmd: NewOrder, symbols: frozenset[str]) -> Refusal | None:
    if cmd.symbol not in symbols:
        return Refusal(OrdRejReason.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol!r}")
    qty = cmd.order_qty
    if not qty.is_finite() or qty <= 0:
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty must be positive, got {qty}")
    if qty != qty.to_integral_value():
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty must be a whole number, got {qty}")
    if qty > MAX_QTY:
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty {qty} exceeds {MAX_QTY}")
    if cmd.ord_type not in SUPPORTED_TYPES:
        return Refusal(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"OrdType {cmd.ord_type.name} not supported")
    if cmd.time_in_force not in SUPPORTED_TIF:
        return Refusal(
            OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"TimeInForce {cmd.time_in_force.name} not supported"
        )
    if cmd.ord_type is OrdType.LIMIT:
        if cmd.price is None:
            return Refusal(OrdRejReason.OTHER, "limit order requires Price(44)")
        if not cmd.price.is_finite() or cmd.price <= 0:
            return Refusal(OrdRejReason.OTHER, f"Price must be positive, got {cmd.price}")
    return None
