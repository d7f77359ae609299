"""Session settings: `sessions.cfg` in QuickFIX's own format, with overrides applied at start-up.

Data dictionaries are referred to by bare name (`FIX44.xml`) and resolved to the project's own
(fix_engine/spec/: QuickFIX's plus the fields our clients send, written by fix_engine/spec/generate.py),
else to the copies that ship with the quickfix package under `<sys.prefix>/share/quickfix/`; ports and
paths can be overridden so tests run on free ports in temporary directories.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fix_engine.quickfix_import import fix

DICTIONARY_KEYS = ("DataDictionary", "TransportDataDictionary", "AppDataDictionary")


def dictionary_dir() -> Path:
    """QuickFIX's own dictionaries (the generator's source)."""
    return Path(sys.prefix) / "share" / "quickfix"


def project_dictionary_dir() -> Path:
    """Ours: QuickFIX's FIX42.xml/FIX44.xml plus our fields, so sessions validate strictly."""
    return Path(__file__).resolve().parent / "spec"


def resolve_dictionary(name: str) -> str:
    """A path (absolute, or existing relative to the working folder) as given; a bare name to our copy
    if we have one, else to QuickFIX's."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return str(path)
    for folder in (project_dictionary_dir(), dictionary_dir()):
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"FIX data dictionary {name!r} not found (looked in {project_dictionary_dir()} "
                            f"and {dictionary_dir()})")


@dataclass
class SessionOverrides:
    """What a deployment or a test changes without editing sessions.cfg."""

    var_dir: Path | None = None
    acceptor_port: int | None = None
    # venue CompID -> port to connect to
    venue_ports: dict[str, int] = field(default_factory=dict)
    venue_host: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # counterparty CompID -> the descriptor of its session's outbox (AppOutboxFd, fix_engine.outbox)
    outbox_fds: dict[str, int] = field(default_factory=dict)
    # acceptor port -> a socket already listening on it, for the acceptor to take over (SocketAcceptFd:
    # an HA standby's, fixoms.held_ports)
    accept_fds: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionInfo:
    key: str  # the counterparty's CompID: our name for the session
    begin_string: str
    sender: str
    target: str
    connection_type: str
    settings: dict[str, str]


def load(
    path: str | os.PathLike[str],
    overrides: SessionOverrides | None = None,
    connection_type: str | None = None,
) -> Any:
    """Read sessions.cfg and return a quickfix.SessionSettings with overrides applied.

    With `connection_type` ("acceptor"/"initiator") only those sessions are kept: QuickFIX 1.16's
    SocketAcceptor reads SocketAcceptPort of every session it is given, initiators included.
    """
    overrides = overrides or SessionOverrides()
    if not Path(path).exists():
        raise FileNotFoundError(f"session settings {path} not found")
    settings = fix.SessionSettings(str(path))
    defaults = settings.get()
    if overrides.var_dir is not None:
        defaults.setString("FileStorePath", str(Path(overrides.var_dir) / "store"))
        defaults.setString("FileLogPath", str(Path(overrides.var_dir) / "log"))
    for key, value in overrides.extra.items():
        defaults.setString(key, value)
    _resolve_dicts(defaults)
    # QuickFIX refuses to redefine a session, so build a fresh settings object with the overrides.
    out = fix.SessionSettings()
    out.set(defaults)
    for sid in settings.getSessions():
        d = settings.get(sid)
        if connection_type is not None and d.getString("ConnectionType") != connection_type:
            continue
        for key in ("FileStorePath", "FileLogPath", *overrides.extra):
            if defaults.has(key):
                d.setString(key, defaults.getString(key))
        _resolve_dicts(d)
        target = sid.getTargetCompID().getValue()
        if d.getString("ConnectionType") == "acceptor":
            if overrides.acceptor_port is not None:
                d.setInt("SocketAcceptPort", overrides.acceptor_port)
            accept_fd = overrides.accept_fds.get(d.getInt("SocketAcceptPort"))
            if accept_fd is not None:
                d.setInt("SocketAcceptFd", accept_fd)
        if target in overrides.outbox_fds:
            d.setInt("AppOutboxFd", overrides.outbox_fds[target])
        if d.getString("ConnectionType") == "initiator":
            if target in overrides.venue_ports:
                d.setInt("SocketConnectPort", overrides.venue_ports[target])
            if overrides.venue_host:
                d.setString("SocketConnectHost", overrides.venue_host)
        out.set(sid, d)
    for key in ("FileStorePath", "FileLogPath"):
        if defaults.has(key):
            Path(defaults.getString(key)).mkdir(parents=True, exist_ok=True)
    return out


def inbox_overrides(overrides: SessionOverrides, inbox_fd: int) -> SessionOverrides:
    """`overrides` plus the settings that keep every session's hot path in C++ (guard.patch,
    `quickfix_native_edge`): application messages, logons and logouts go to the inbox socket `inbox_fd`
    (fix_engine.inbox), each session writes its own FileLog, and no toApp callback is made (we have none:
    outbound messages are complete when we send them)."""
    native = {"AppInboxFd": str(inbox_fd), "NativeMessageLog": "Y", "CallToApp": "N"}
    return replace(overrides, extra={**overrides.extra, **native})


def _resolve_dicts(d: Any) -> None:
    for key in DICTIONARY_KEYS:
        if d.has(key):
            d.setString(key, resolve_dictionary(d.getString(key)))


def sessions(settings: Any) -> list[SessionInfo]:
    out = []
    for sid in settings.getSessions():
        d = settings.get(sid)
        values = {}
        for key in ("ConnectionType", "SocketAcceptPort", "SocketConnectHost", "SocketConnectPort", "HeartBtInt"):
            if d.has(key):
                values[key] = d.getString(key)
        out.append(
            SessionInfo(
                key=sid.getTargetCompID().getValue(),
                begin_string=sid.getBeginString().getValue(),
                sender=sid.getSenderCompID().getValue(),
                target=sid.getTargetCompID().getValue(),
                connection_type=d.getString("ConnectionType"),
                settings=values,
            )
        )
    return sorted(out, key=lambda s: (s.connection_type, s.key))


def registered(settings: Any) -> list[str]:
    """Those of `settings`' sessions that exist in QuickFIX's session registry now.

    QuickFIX 1.16 keeps one registry per process, keyed by SessionID. A session created while another
    with the same id exists is silently left out of it: logons are then handed to the older session, or
    refused ("Session not found") once that one is destroyed, since destroying either session removes the
    id. So no two acceptors or initiators sharing a SessionID may be alive in one process, even stopped:
    one must be destroyed before the next is created."""
    return sorted(str(sid) for sid in settings.getSessions() if fix.Session.doesSessionExist(sid))


def session_file_prefix(begin: str, sender: str, target: str, qualifier: str = "") -> str:
    """How QuickFIX names a session's FileStore and FileLog files (after its SessionID)."""
    return f"{begin}-{sender}-{target}" + (f"-{qualifier}" if qualifier else "")


def quickfix_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quickfix")
    except PackageNotFoundError:
        return "unknown"


def quickfix_guarded() -> bool:
    """Built with native/quickfix/guard.patch (what `make install` installs): bounded framing, a first-
    message deadline, unparseable frames dropped. A plain PyPI build works but trusts its peers."""
    return "+fixoms" in quickfix_version()


def _patch_level() -> int:
    """The N of the installed QuickFIX's local version +fixomsN (native/quickfix/build.sh), 0 without."""
    found = re.search(r"\+fixoms(\d+)", quickfix_version())
    return int(found.group(1)) if found else 0


def quickfix_native_edge() -> bool:
    """Built with the second guard.patch (local version fixoms2 or later): the session settings AppInboxFd,
    NativeMessageLog and CallToApp exist (a QuickFIX without them would ignore them, and then neither
    deliver messages to the inbox nor log them)."""
    return _patch_level() >= 2


def quickfix_outbox() -> bool:
    """Built with the fourth guard.patch (local version fixoms4 or later): the session setting AppOutboxFd
    exists (fix_engine.outbox). Diagnostics and benchmarks can switch the outbox off with the environment
    variable FIXOMS_FIX_OUTBOX=off: the engine thread then sends each message itself, as before."""
    if os.environ.get("FIXOMS_FIX_OUTBOX", "").lower() in ("off", "0", "no"):
        return False
    return _patch_level() >= 4


def quickfix_accept_fd() -> bool:
    """Built with the fifth guard.patch (local version fixoms5 or later): the session setting SocketAcceptFd
    exists (an older build would ignore it and fail to bind a port the program already listens on)."""
    return _patch_level() >= 5


def acceptor_ports(path: str | os.PathLike[str]) -> list[int]:
    """The ports the acceptor sessions of sessions.cfg `path` listen on."""
    return sorted({int(s.settings["SocketAcceptPort"]) for s in sessions(fix.SessionSettings(str(path)))
                   if s.connection_type == "acceptor" and "SocketAcceptPort" in s.settings})


def quickfix_pg_store() -> bool:
    """Built with QuickFIX's PostgreSQLStore (native/quickfix/build.sh with libpq: HA mode needs it). A build
    without it still has the class, as a stub that throws ConfigError when used."""
    try:
        fix.PostgreSQLQuery("SELECT 1")
    except Exception:
        return False
    return True


def pg_store_overrides(overrides: SessionOverrides, database_url: str) -> SessionOverrides:
    """`overrides` plus the settings of QuickFIX's PostgreSQLStore in the journal's database (HA mode):
    each session's sequence numbers and sent messages live there, so a standby taking over continues
    them. RefreshOnLogon: a session reads its numbers from the store again at each logon."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    store = {"PostgreSQLStoreDatabase": url.database or "postgres", "PostgreSQLStoreUser": url.username or "postgres",
             "PostgreSQLStorePassword": url.password or "", "PostgreSQLStoreHost": url.host or "127.0.0.1",
             "PostgreSQLStorePort": str(url.port or 5432), "RefreshOnLogon": "Y"}
    return replace(overrides, extra={**overrides.extra, **store})
