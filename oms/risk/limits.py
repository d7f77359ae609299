"""Risk limits: what each check compares against, and how configuration text becomes a limit.

`RiskLimits` holds every per-account limit; `RiskConfig` holds the defaults, the accounts that differ,
and the firm-wide values (restricted list, session rates, duplicate window). A limit of None means
unlimited. Values are exact (`Decimal`), so a limit of 100000 refuses 100000.0001 and passes 100000.

Text form (used by `RiskEngine.set_limit` and `risk show`): "none" for unlimited, "true"/"false",
plain decimals without exponent, symbol lists comma-separated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
_NONE_WORDS = frozenset({"none", "unlimited", "null", ""})
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-account limits. Quantities are shares/contracts, notionals and prices in price currency."""

    # Open + filled-today notional of the account, both sides.
    credit_limit: Decimal | None = None
    max_order_qty: Decimal | None = Decimal(100_000)
    max_order_notional: Decimal | None = Decimal(1_000_000)
    # A fraction: 0.10 refuses a limit price more than 10% away from the reference.
    price_collar: Decimal | None = Decimal("0.10")
    # Covers MARKET and STOP: both execute at whatever the market gives.
    market_orders_allowed: bool = True
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    # Per account and symbol.
    max_open_orders: int | None = 1000
    # Net, per symbol: the worst-case long or short, counting open orders on the side that grows it.
    max_position: Decimal | None = None
    # Gross, per account: the sum over symbols of that worst-case absolute position.
    max_gross_position: Decimal | None = None
    # On top of the firm-wide list.
    restricted: frozenset[str] = frozenset()


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RiskLimits))
# Firm-level settings that `set_limit("*", ...)` reaches besides the defaults.
FIRM_NAMES: tuple[str, ...] = ("restricted", "session_submit_rate", "session_modify_rate", "duplicate_window")


@dataclass(frozen=True)
class RiskConfig:
    defaults: RiskLimits = field(default_factory=RiskLimits)
    # Complete limits of the accounts that differ from the defaults.
    accounts: dict[str, RiskLimits] = field(default_factory=dict)
    # Firm-wide restricted symbols; each account may add its own.
    restricted: frozenset[str] = frozenset()
    # Per session, per second (sliding window); None = unlimited.
    session_submit_rate: int | None = 100
    session_modify_rate: int | None = 100
    # Seconds; 0 turns the duplicate-content check off.
    duplicate_window: float = 1.0

    def limits_for(self, account: str) -> RiskLimits:
        return self.accounts.get(account, self.defaults)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskConfig:
        """Build from a TOML-like dict. Account entries override the defaults key by key."""
        known = {"defaults", "accounts", *FIRM_NAMES}
        for key in data:
            if key not in known:
                raise ValueError(f"unknown risk config key {key!r}")
        defaults = limits_from_dict(_mapping(data.get("defaults", {}), "defaults"), RiskLimits(), "defaults")
        accounts = {
            str(name): limits_from_dict(_mapping(values, f"accounts.{name}"), defaults, f"accounts.{name}")
            for name, values in _mapping(data.get("accounts", {}), "accounts").items()
        }
        return cls(
            defaults=defaults,
            accounts=accounts,
            restricted=parse_symbols("restricted", data.get("restricted", ())),
            session_submit_rate=parse_count("session_submit_rate", data.get("session_submit_rate", 100)),
            session_modify_rate=parse_count("session_modify_rate", data.get("session_modify_rate", 100)),
            duplicate_window=parse_seconds("duplicate_window", data.get("duplicate_window", 1.0)),
        )


def limits_from_dict(data: Mapping[str, Any], base: RiskLimits, where: str) -> RiskLimits:
    changes: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in LIMIT_NAMES:
            raise ValueError(f"unknown risk limit {where}.{key}")
        try:
            changes[key] = parse_limit(key, raw)
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from None
    return replace(base, **changes)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"risk config {where} must be a table, got {value!r}")
    return value


# --- values --------------------------------------------------------------------------------------
def parse_limit(name: str, raw: object) -> Any:
    """The typed value of the RiskLimits field `name` from config or operator text."""
    if name == "max_open_orders":
        return parse_count(name, raw)
    if name == "market_orders_allowed":
        return parse_bool(name, raw)
    if name == "restricted":
        return parse_symbols(name, raw)
    if name in LIMIT_NAMES:
        return parse_amount(name, raw)
    raise ValueError(f"unknown risk limit {name!r}")


def parse_amount(name: str, raw: object) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE_WORDS):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{name}: expected a number or 'none', got {raw!r}")
    try:
        # str() first: a TOML float 0.1 must become Decimal("0.1"), not its binary expansion.
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError(f"{name}: expected a number or 'none', got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {raw!r}")
    return value


def parse_count(name: str, raw: object) -> int | None:
    value = parse_amount(name, raw)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise ValueError(f"{name}: must be a whole number, got {raw!r}")
    return int(value)


def parse_seconds(name: str, raw: object) -> float:
    value = parse_amount(name, raw)
    if value is None:
        raise ValueError(f"{name}: must be a number of seconds (0 = off), got {raw!r}")
    return float(value)


def parse_bool(name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError(f"{name}: expected true or false, got {raw!r}")


def parse_symbols(name: str, raw: object, current: frozenset[str] = frozenset()) -> frozenset[str]:
    """A symbol list: an iterable of names or comma-separated text; "+XYZ"/"-XYZ" edit `current`."""
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in _NONE_WORDS:
            return frozenset()
        if text[0] in "+-":
            symbol = text[1:].strip()
            if not symbol or "," in symbol:
                raise ValueError(f"{name}: '+SYMBOL' or '-SYMBOL' edits one symbol, got {raw!r}")
            return current | {symbol} if text[0] == "+" else current - {symbol}
        items: Iterable[object] = text.split(",")
    elif isinstance(raw, Iterable):
        items = raw
    else:
        raise ValueError(f"{name}: expected a list of symbols, got {raw!r}")
    symbols = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{name}: symbols must be non-empty text, got {item!r}")
        symbols.add(item.strip())
    return frozenset(symbols)


def fmt(value: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, frozenset):
        return ",".join(sorted(value)) if value else "none"
    return str(value)


def json_value(value: object) -> object:
    """A limit as JSON: exact decimals as strings, symbol lists sorted."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def limits_json(limits: RiskLimits) -> dict[str, object]:
    return {name: json_value(getattr(limits, name)) for name in LIMIT_NAMES}
