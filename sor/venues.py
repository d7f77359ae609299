"""What the router knows about each venue: fees, speed and what it accepts.

Built from config (`[venue_profiles.NAME]` in fixoms.toml), for example:

    [venue_profiles.VENUE-A]
    maker_rebate = "0.0020"      # per share paid to us when our resting order is hit (negative: we pay)
    taker_fee = "0.0030"         # per share we pay when we take liquidity (negative: an inverted venue pays us)
    latency_ms = 1
    order_types = ["LIMIT", "MARKET"]
    max_order_qty = 50000        # omit for no limit
    supports_ioc = true
    post_only = false            # true: the venue only accepts orders that add liquidity
    touch_outflow = 2000         # optional: shares expected to trade at its touch per routing horizon
    cancel_on_disconnect = true  # the venue cancels our orders when the session drops (default true)
    amend = true                 # the venue takes OrderCancelReplaceRequest for a working order (default true)

Money and sizes are Decimal; TOML floats are read through their text so 0.003 stays 0.003.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from oms.enums import OrdType

ZERO = Decimal(0)
DEFAULT_ORDER_TYPES: frozenset[OrdType] = frozenset({OrdType.LIMIT, OrdType.MARKET})


@dataclass(frozen=True, slots=True)
class VenueProfile:
    name: str
    maker_rebate: Decimal = ZERO
    taker_fee: Decimal = ZERO
    latency_ms: Decimal = ZERO
    order_types: frozenset[OrdType] = DEFAULT_ORDER_TYPES
    max_order_qty: Decimal | None = None
    supports_ioc: bool = True
    post_only: bool = False
    touch_outflow: Decimal | None = None
    # The venue cancels our resting orders when our session drops (most exchanges offer it). Only then
    # may the engine route a dropped venue's open quantity elsewhere after the grace period.
    cancel_on_disconnect: bool = True
    # The venue amends a working order in place (OrderCancelReplaceRequest); without it a client's
    # replace is worked as cancel-and-reroute there (docs/rules-of-engagement.md, "Replaces at venues").
    amend: bool = True

    def accepts(self, ord_type: OrdType, qty: Decimal | None = None, ioc: bool = False) -> bool:
        """Can this venue take a child of this type (and size, and IOC-ness)?"""
        if ord_type not in self.order_types:
            return False
        if ioc and not self.supports_ioc:
            return False
        return qty is None or self.max_order_qty is None or qty <= self.max_order_qty

    @property
    def can_take(self) -> bool:
        """A venue we may send marketable IOC limits to."""
        return OrdType.LIMIT in self.order_types and self.supports_ioc and not self.post_only

    def capacity(self, qty: Decimal) -> Decimal:
        return qty if self.max_order_qty is None else min(qty, self.max_order_qty)

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> VenueProfile:
        known = {
            "maker_rebate", "taker_fee", "latency_ms", "order_types", "max_order_qty", "supports_ioc",
            "post_only", "touch_outflow", "cancel_on_disconnect", "amend",
        }
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"venue_profiles.{name}: unknown setting(s) {', '.join(sorted(unknown))}")
        types = cfg.get("order_types")
        max_qty = cfg.get("max_order_qty")
        outflow = cfg.get("touch_outflow")
        profile = cls(
            name=name,
            maker_rebate=_dec(name, "maker_rebate", cfg.get("maker_rebate", 0)),
            taker_fee=_dec(name, "taker_fee", cfg.get("taker_fee", 0)),
            latency_ms=_dec(name, "latency_ms", cfg.get("latency_ms", 0)),
            order_types=DEFAULT_ORDER_TYPES if types is None else frozenset(_ord_type(name, t) for t in types),
            max_order_qty=None if max_qty in (None, "", "none") else _dec(name, "max_order_qty", max_qty),
            supports_ioc=bool(cfg.get("supports_ioc", True)),
            post_only=bool(cfg.get("post_only", False)),
            touch_outflow=None if outflow in (None, "", "none") else _dec(name, "touch_outflow", outflow),
            cancel_on_disconnect=_flag(name, "cancel_on_disconnect", cfg.get("cancel_on_disconnect", True)),
            amend=_flag(name, "amend", cfg.get("amend", True)),
        )
        if profile.max_order_qty is not None and profile.max_order_qty <= 0:
            raise ValueError(f"venue_profiles.{name}.max_order_qty must be positive")
        if profile.touch_outflow is not None and profile.touch_outflow <= 0:
            raise ValueError(f"venue_profiles.{name}.touch_outflow must be positive")
        return profile


def profiles_from_config(cfg: Mapping[str, Mapping[str, Any]]) -> dict[str, VenueProfile]:
    """`{name: {setting: value}}` (the `[venue_profiles]` table) to profiles by name."""
    return {name: VenueProfile.from_config(name, settings) for name, settings in cfg.items()}


def _flag(venue: str, key: str, value: Any) -> bool:
    # bool("false") is True: a quoted TOML string must not silently turn a capability on.
    if not isinstance(value, bool):
        raise ValueError(f"venue_profiles.{venue}.{key}: expected true or false, got {value!r}")
    return value


def _dec(venue: str, key: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"venue_profiles.{venue}.{key}: expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"venue_profiles.{venue}.{key}: expected a number, got {value!r}") from None


def _ord_type(venue: str, value: Any) -> OrdType:
    text = str(value).strip()
    for t in OrdType:
        if text.upper() == t.name or text == t.value:
            return t
    raise ValueError(f"venue_profiles.{venue}.order_types: unknown order type {value!r}")
