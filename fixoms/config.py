"""Configuration: `fixoms.toml` (engine, database, symbols, accounts, simulated venues) + `sessions.cfg`."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from oms.risk import RiskConfig


class ConfigError(Exception):
    pass


@dataclass
class SimVenueConfig:
    name: str
    port: int
    seed: int = 1
    levels: int = 5  # depth of seeded house liquidity each side
    latency_ms: float = 0.0  # added before the simulator answers each message
    activity_ms: float = 0.0  # background orders arrive/cancel this often (0: a still book)
    symbols: tuple[str, ...] = ()  # listed symbols (default: all configured)


@dataclass
class Config:
    instance: str = "OMS1"
    sessions_file: Path = Path("sessions.cfg")
    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/fixoms.db"
    # Who derives the journal's tables from its log: "process" (its own process, off the engine's GIL),
    # "thread" (a thread of the engine process) or "off" (only on demand: tools).
    projector: str = "process"
    # symbol -> venue that receives it (the static route)
    symbols: dict[str, str] = field(default_factory=dict)
    # reference prices the simulated venues quote around
    reference_prices: dict[str, Decimal] = field(default_factory=dict)
    # client CompID -> account used when an order carries no Account(1)
    accounts: dict[str, str] = field(default_factory=dict)
    sim_venues: list[SimVenueConfig] = field(default_factory=list)
    admin_socket: Path = Path("var/fixoms.sock")
    risk: RiskConfig = field(default_factory=RiskConfig)
    # [sor] and [venue_profiles.*] as written: sor.router.SmartRouter.from_config validates them
    sor: dict[str, Any] = field(default_factory=dict)
    venue_profiles: dict[str, Any] = field(default_factory=dict)
    metrics_port: int | None = None  # Prometheus endpoint on 127.0.0.1 (None: off, 0: any free port)
    require_auth: bool = True
    # drop-copy session CompID -> accounts whose ExecutionReports it receives ("*" = all)
    drop_copy: dict[str, frozenset[str]] = field(default_factory=dict)
    # client CompIDs whose working orders are canceled when their session drops
    cancel_on_disconnect: set[str] = field(default_factory=set)
    # venue faults (oms.engine.EngineConfig): [engine] venue_down_grace_s, venue_ack_timeout_s
    venue_down_grace_s: float = 3.0
    venue_ack_timeout_s: float = 2.0
    # [engine] cpus: the CPUs the engine thread runs on (empty: wherever the OS puts it; see engine_cpus below)
    engine_cpus: tuple[int, ...] = ()
    timezone: str = "America/New_York"
    session_end: str = "16:00"  # DAY orders expire then (local time in `timezone`, weekdays)
    session_start: str = "09:30"  # GT orders done for the day are renewed then (same clock)
    # [schedule] rotate_logs: daily time (HH:MM, `timezone`) the FIX logs and the engine log are rotated;
    # log_retention_days: compressed logs older than this are deleted
    rotate_logs_at: str = "00:05"
    log_retention_days: int = 30
    # [logging] format ("text" or "json": one JSON object a line) and file (None: stderr)
    log_format: str = "text"
    log_file: Path | None = None
    source: Path | None = None
    # [ha] (fixoms.ha; PostgreSQL only): enabled makes `fixoms run` a candidate that takes the primary's
    # lease or stands by (as `run --standby` does); lease_s is the lease's duration, renewed every
    # renew_s (at most half of it); a standby looks at the lease and the log every poll_s.
    ha_enabled: bool = False
    ha_lease_s: float = 1.0
    ha_renew_s: float = 0.25
    ha_poll_s: float = 0.1


DEFAULT_SYMBOLS = {"AAPL": "VENUE-A", "MSFT": "VENUE-A", "IBM": "VENUE-B", "TSLA": "VENUE-B"}
DEFAULT_PRICES = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "IBM": Decimal("150.00"),
                  "TSLA": Decimal("250.00")}


def load(path: str | Path | None = None) -> Config:
    """Load fixoms.toml; relative paths in it are taken relative to the file's folder."""
    if path is None:
        candidate = Path("fixoms.toml")
        if not candidate.exists():
            return Config(symbols=dict(DEFAULT_SYMBOLS), reference_prices=dict(DEFAULT_PRICES),
                          sim_venues=[SimVenueConfig("VENUE-A", 9881), SimVenueConfig("VENUE-B", 9882)],
                          cancel_on_disconnect={"CLIENT1", "CLIENT2"})
        path = candidate
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return from_dict(data, path.parent, path)


def from_dict(data: dict[str, Any], base: Path, source: Path | None = None) -> Config:
    def rel(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base / p

    engine = data.get("engine", {})
    db = data.get("database", {})
    cfg = Config(source=source)
    cfg.instance = str(engine.get("instance", cfg.instance))
    cfg.sessions_file = rel(engine.get("sessions", "sessions.cfg"))
    cfg.var_dir = rel(engine.get("var_dir", "var"))
    cfg.admin_socket = rel(engine.get("admin_socket", str(Path(engine.get("var_dir", "var")) / "fixoms.sock")))
    url = str(db.get("url", f"sqlite:///{cfg.var_dir / 'fixoms.db'}"))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{rel(url[len('sqlite:///'):])}"
    cfg.database_url = url
    cfg.projector = str(db.get("projector", cfg.projector))
    if cfg.projector not in ("process", "thread", "off"):
        raise ConfigError(f"[database] projector must be \"process\", \"thread\" or \"off\", got {cfg.projector!r}")
    for key in ("venue_down_grace_s", "venue_ack_timeout_s"):
        value = engine.get(key, getattr(cfg, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"[engine] {key} must be a positive number of seconds, got {value!r}")
        setattr(cfg, key, float(value))
    cfg.engine_cpus = engine_cpus(engine.get("cpus", []))
    symbols = data.get("symbols", {})
    if not isinstance(symbols, dict):
        raise ConfigError("[symbols] must be a table of SYMBOL = { venue = ..., reference = ... }")
    for symbol, spec in symbols.items():
        if isinstance(spec, str):
            cfg.symbols[symbol] = spec
        elif isinstance(spec, dict) and "venue" in spec:
            cfg.symbols[symbol] = str(spec["venue"])
            if "reference" in spec:
                cfg.reference_prices[symbol] = Decimal(str(spec["reference"]))
        else:
            raise ConfigError(f"[symbols] {symbol}: needs a venue")
    cfg.accounts = {str(k): str(v) for k, v in data.get("accounts", {}).items()}
    try:
        cfg.risk = RiskConfig.from_dict(data.get("risk", {}))
    except ValueError as exc:
        raise ConfigError(f"[risk] {exc}") from None
    cfg.sor = dict(data.get("sor", {}))
    cfg.venue_profiles = dict(data.get("venue_profiles", {}))
    metrics = data.get("metrics", {})
    if "port" in metrics:
        try:
            cfg.metrics_port = int(metrics["port"])
        except (TypeError, ValueError):
            raise ConfigError("[metrics] port must be an integer (0: any free port)") from None
    drop = data.get("drop_copy", {})
    if not isinstance(drop, dict) or not all(isinstance(v, list) for v in drop.values()):
        raise ConfigError("[drop_copy] must map a session CompID to a list of accounts")
    cfg.drop_copy = {str(k): frozenset(str(a) for a in v) for k, v in drop.items()}
    access = data.get("access", {})
    cfg.require_auth = bool(access.get("require_auth", True))
    cod = access.get("cancel_on_disconnect", list(cfg.accounts))
    cfg.cancel_on_disconnect = {str(x) for x in cod}
    schedule = data.get("schedule", {})
    cfg.timezone = str(schedule.get("timezone", cfg.timezone))
    cfg.session_end = str(schedule.get("session_end", cfg.session_end))
    cfg.session_start = str(schedule.get("session_start", cfg.session_start))
    if not _hh_mm(cfg.session_start):
        raise ConfigError(f"[schedule] session_start must be HH:MM, got {cfg.session_start!r}")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(cfg.timezone)
        hour, minute = (int(x) for x in cfg.session_end.split(":"))
        assert 0 <= hour < 24 and 0 <= minute < 60
    except Exception:
        raise ConfigError(f"[schedule] needs a valid timezone and session_end HH:MM, got "
                          f"{cfg.timezone!r} / {cfg.session_end!r}") from None
    cfg.rotate_logs_at = str(schedule.get("rotate_logs", cfg.rotate_logs_at))
    retention = schedule.get("log_retention_days", cfg.log_retention_days)
    if not _hh_mm(cfg.rotate_logs_at) or isinstance(retention, bool) or not isinstance(retention, int) \
            or retention < 1:
        raise ConfigError(f"[schedule] rotate_logs must be HH:MM and log_retention_days an integer >= 1, got "
                          f"{cfg.rotate_logs_at!r} / {retention!r}")
    cfg.log_retention_days = retention
    logging_ = data.get("logging", {})
    cfg.log_format = str(logging_.get("format", cfg.log_format))
    if cfg.log_format not in ("text", "json"):
        raise ConfigError(f"[logging] format must be \"text\" or \"json\", got {cfg.log_format!r}")
    if logging_.get("file"):
        cfg.log_file = rel(str(logging_["file"]))
    _ha(cfg, data.get("ha", {}))
    for name, spec in data.get("sim_venues", {}).items():
        try:
            cfg.sim_venues.append(SimVenueConfig(
                name, int(spec["port"]), int(spec.get("seed", 1)), int(spec.get("levels", 5)),
                float(spec.get("latency_ms", 0)), float(spec.get("activity_ms", 0)),
                tuple(str(x) for x in spec.get("symbols", ())),
            ))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"[sim_venues.{name}] needs an integer port (levels, latency_ms, activity_ms: "
                              "numbers; symbols: a list)") from None
    return cfg


def _ha(cfg: Config, ha: Any) -> None:
    if not isinstance(ha, dict):
        raise ConfigError("[ha] must be a table (enabled, lease_s, renew_s, poll_s)")
    enabled = ha.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"[ha] enabled must be true or false, got {enabled!r}")
    cfg.ha_enabled = enabled
    for key in ("lease_s", "renew_s", "poll_s"):
        value = ha.get(key, getattr(cfg, f"ha_{key}"))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"[ha] {key} must be a positive number of seconds, got {value!r}")
        setattr(cfg, f"ha_{key}", float(value))
    if cfg.ha_renew_s * 2 > cfg.ha_lease_s:
        raise ConfigError(f"[ha] renew_s ({cfg.ha_renew_s:g}) must be at most half of lease_s ({cfg.ha_lease_s:g}): "
                          "a renewal must land well before the lease expires")


def _hh_mm(text: str) -> bool:
    hour, _, minute = text.partition(":")
    return hour.isdigit() and minute.isdigit() and 0 <= int(hour) < 24 and 0 <= int(minute) < 60


def engine_cpus(value: Any) -> tuple[int, ...]:
    """`[engine] cpus`: CPU numbers this process may run on (os.sched_getaffinity, Linux), none repeated."""
    if value == []:
        return ()  # the default: nothing to check, and no call that only Linux has
    usable = sorted(os.sched_getaffinity(0))
    if (not isinstance(value, list) or any(isinstance(c, bool) or not isinstance(c, int) for c in value)
            or len(set(value)) != len(value) or not set(value) <= set(usable)):
        raise ConfigError(f"[engine] cpus must be a list of CPU numbers this process may use ({usable}), "
                          f"got {value!r}")
    return tuple(value)
