"""Basic order validation: the checks any order must pass before risk. Each failure names its rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from oms.commands import NewOrder, ReplaceOrder
from oms.enums import OrdRejReason, OrdType, TimeInForce
from oms.model import Order

SUPPORTED_TYPES = frozenset({OrdType.MARKET, OrdType.LIMIT, OrdType.STOP, OrdType.STOP_LIMIT})
SUPPORTED_TIF = frozenset({TimeInForce.DAY, TimeInForce.IOC, TimeInForce.GTC, TimeInForce.FOK, TimeInForce.GTD})
PRICED = frozenset({OrdType.LIMIT, OrdType.STOP_LIMIT})
MAX_QTY = Decimal(1_000_000_000)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: OrdRejReason
    text: str


def _quantity(qty: Decimal) -> Refusal | None:
    if not qty.is_finite() or qty <= 0:
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty must be positive, got {qty}")
    if qty != qty.to_integral_value():
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty must be a whole number, got {qty}")
    if qty > MAX_QTY:
        return Refusal(OrdRejReason.INCORRECT_QUANTITY, f"OrderQty {qty} exceeds {MAX_QTY}")
    return None


def _price(ord_type: OrdType, price: Decimal | None) -> Refusal | None:
    if ord_type in PRICED:
        if price is None:
            return Refusal(OrdRejReason.OTHER, f"{ord_type.name.lower()} order requires Price(44)")
        if not price.is_finite() or price <= 0:
            return Refusal(OrdRejReason.OTHER, f"Price must be positive, got {price}")
    return None


def validate_new(cmd: NewOrder, symbols: frozenset[str], now: datetime | None = None) -> Refusal | None:
    if cmd.symbol not in symbols:
        return Refusal(OrdRejReason.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol!r}")
    refusal = _quantity(cmd.order_qty)
    if refusal is not None:
        return refusal
    if cmd.ord_type not in SUPPORTED_TYPES:
        return Refusal(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"OrdType {cmd.ord_type.name} not supported")
    if cmd.time_in_force not in SUPPORTED_TIF:
        return Refusal(
            OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"TimeInForce {cmd.time_in_force.name} not supported"
        )
    refusal = _price(cmd.ord_type, cmd.price)
    if refusal is not None:
        return refusal
    if cmd.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT) and (cmd.stop_px is None or cmd.stop_px <= 0):
        return Refusal(OrdRejReason.OTHER, f"{cmd.ord_type.name.lower()} order requires a positive StopPx(99)")
    if cmd.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT) and cmd.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        return Refusal(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC, "stop orders cannot be IOC/FOK")
    if cmd.time_in_force is TimeInForce.GTD:
        if cmd.expire_time is None:
            return Refusal(OrdRejReason.OTHER, "GTD order requires ExpireTime(126) or ExpireDate(432)")
        if now is not None and cmd.expire_time <= now:
            return Refusal(OrdRejReason.OTHER, f"ExpireTime {cmd.expire_time.isoformat()} is in the past")
    if cmd.max_floor is not None and (cmd.max_floor <= 0 or cmd.max_floor > cmd.order_qty
                                      or cmd.max_floor != cmd.max_floor.to_integral_value()):
        return Refusal(OrdRejReason.OTHER, f"MaxFloor(111) must be a whole number in 1..OrderQty, got {cmd.max_floor}")
    return None


def validate_replace(order: Order, cmd: ReplaceOrder) -> Refusal | None:
    """A replace may change quantity, price, order type and TIF; never symbol or side."""
    if cmd.symbol != order.symbol or order.side is None or cmd.side is not order.side:
        return Refusal(OrdRejReason.OTHER, "a replace cannot change Symbol(55) or Side(54)")
    refusal = _quantity(cmd.order_qty)
    if refusal is not None:
        return refusal
    # Market <-> limit may change; a stop stays the stop it is.
    if cmd.ord_type is not order.ord_type and (
        cmd.ord_type not in (OrdType.MARKET, OrdType.LIMIT) or order.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT)
    ):
        return Refusal(OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                       f"cannot replace a {order.ord_type.name if order.ord_type else '?'} order "
                       f"with OrdType {cmd.ord_type.name}")
    return _price(cmd.ord_type, cmd.price)
