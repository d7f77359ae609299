"""Shared fixtures: real databases (SQLite file, PostgreSQL on 127.0.0.1:5432) and a running stack
(two venue simulators + the engine) on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
# Each pytest process gets a database of its own on the server (created here, dropped at the end of the
# session), so that two runs on one machine - a developer's and CI's, or a loop beside a benchmark -
# never reset each other's tables. FIXOMS_TEST_PG names a database to use instead.
_PG_OWN = f"fixoms_test_{os.getpid()}"
PG_URL = os.environ.get("FIXOMS_TEST_PG", f"postgresql+psycopg://postgres@127.0.0.1:5432/{_PG_OWN}")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _pg_available() -> str | None:
    try:
        if "FIXOMS_TEST_PG" not in os.environ:
            _pg_admin(f"DROP DATABASE IF EXISTS {_PG_OWN} WITH (FORCE)")
            _pg_admin(f"CREATE DATABASE {_PG_OWN}")
        return None
    except Exception as exc:  # the reason is shown in the skip message
        return f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}"


_PG_SKIP = _pg_available()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _PG_SKIP is None and "FIXOMS_TEST_PG" not in os.environ:
        with contextlib.suppress(Exception):  # a database left behind is not a test failure
            _pg_admin(f"DROP DATABASE IF EXISTS {_PG_OWN} WITH (FORCE)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests (the long fuzz and crash variants) run only when asked for with -m slow or
    FIXOMS_SLOW=1: nothing deselects them otherwise (pyproject has no addopts), and a plain `pytest`
    must stay short."""
    expr = config.getoption("markexpr") or ""
    if os.environ.get("FIXOMS_SLOW") == "1" or ("slow" in expr and "not slow" not in expr):
        return
    skip = pytest.mark.skip(reason="long variant: select it with -m slow (or FIXOMS_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


PASSWORDS = {"CLIENT1": "secret-1", "DROPCOPY1": "copy-1"}


def seed_credentials(url: str) -> None:
    """CLIENT1 (FIX 4.4) logs on with Username/Password; CLIENT2 (FIX 4.2) by CompID + address."""
    from oms.queries import set_credential
    from oms.schema import create_schema, make_engine

    engine = make_engine(url)
    create_schema(engine)
    set_credential(engine, "CLIENT1", "CLIENT1", PASSWORDS["CLIENT1"], frozenset(), "tests")
    set_credential(engine, "CLIENT2", "CLIENT2", "unused", frozenset({"127.0.0.1"}), "tests")
    set_credential(engine, "DROPCOPY1", "DROPCOPY1", PASSWORDS["DROPCOPY1"], frozenset(), "tests")
    engine.dispose()


def logon_fields(comp_id: str) -> list[tuple[int, str]]:
    return [(553, comp_id), (554, PASSWORDS[comp_id])] if comp_id in PASSWORDS else []


def reset_pg() -> None:
    """An empty `test` database: every table of ours, Alembic's and APScheduler's gone."""
    from sqlalchemy import text

    from oms.schema import make_engine

    engine = make_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    reset_pg()
    return PG_URL


@dataclass
class Stack:
    tmp: Path
    db_url: str
    acceptor_port: int
    venue_ports: dict[str, int]
    sims: list = field(default_factory=list)
    app: object = None
    clients: list = field(default_factory=list)
    sessions_file: Path = ROOT / "sessions.cfg"
    # [venue_profiles] settings laid over fixoms.toml's, by venue (e.g. {"VENUE-B": {"amend": False}})
    venue_profiles: dict[str, dict[str, object]] = field(default_factory=dict)
    # fixoms.config.Config fields to set (e.g. {"venue_ack_timeout_s": 30.0})
    overrides: dict[str, object] = field(default_factory=dict)

    def config(self):  # type: ignore[no-untyped-def]
        from fixoms import config as cfgmod

        base = cfgmod.load(ROOT / "fixoms.toml")
        profiles = {k: dict(v) for k, v in base.venue_profiles.items()}
        for venue, settings in self.venue_profiles.items():
            profiles.setdefault(venue, {}).update(settings)
        return replace(base, **self.overrides, venue_profiles=profiles, database_url=self.db_url, var_dir=self.tmp / "engine", sessions_file=self.sessions_file,
                       admin_socket=self.tmp / "admin.sock", metrics_port=0)

    def orders(self) -> list[dict[str, str]]:
        """The blotter as the journal's tables hold it, after the engine projected what it appended."""
        from fixoms.blotter import list_orders

        self.app.journal.sync()  # type: ignore[attr-defined]
        return list_orders(self.app.journal.engine)  # type: ignore[attr-defined]

    def start_engine(self) -> None:
        from fix_engine.settings import SessionOverrides
        from fixoms.app import EngineApp

        self.app = EngineApp(
            self.config(),
            SessionOverrides(var_dir=self.tmp / "engine", acceptor_port=self.acceptor_port,
                             venue_ports=dict(self.venue_ports)),
        )
        self.app.start()  # type: ignore[attr-defined]
        assert self.app.wait_venues(15), "venues did not log on"  # type: ignore[attr-defined]

    def stop_engine(self) -> None:
        app, self.app = self.app, None
        if app is not None:
            app.stop()  # type: ignore[attr-defined]

    def client(self, comp_id: str = "CLIENT1", begin: str = "FIX.4.4", **kw):  # type: ignore[no-untyped-def]
        from fix_engine.client import FixClient

        kw.setdefault("logon_fields", logon_fields(comp_id) if begin == "FIX.4.4" else [])
        c = FixClient(comp_id, self.acceptor_port, self.tmp, begin, **kw).start()
        self.clients.append(c)
        # The client is logged on once our Logon reached it; QuickFIX's acceptor marks its own side a
        # moment later (after sending the reply), which a loaded machine can stretch to milliseconds.
        gateway = getattr(self.app, "gateway", None)
        deadline = time.monotonic() + 10
        while gateway is not None and comp_id not in gateway.logged_on:
            assert time.monotonic() < deadline, f"{comp_id} logged on, but the engine never saw its logon"
            time.sleep(0.01)
        return c

    def venue(self, name: str = "VENUE-B"):  # type: ignore[no-untyped-def]
        """The running simulator of that venue (its VenueSimulator application)."""
        return next(s.app for s in self.sims if s.app.name == name)

    def close(self) -> None:
        """Stops every part even if one fails (the first failure is raised at the end): a part left
        running keeps its QuickFIX sessions registered and would break the next test's stack."""
        parts = [lambda c=c: c.stop(force=True) for c in self.clients] + [self.stop_engine]
        parts += [s.stop for s in self.sims]
        failures = []
        for stop in parts:
            try:
                stop()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


REFERENCE = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "IBM": Decimal("150.00"), "TSLA": Decimal("250.00")}
# Each simulated venue lists the symbols routed to it (fixoms.toml), so these tests see one market per
# symbol; tests/e2e/test_routing.py lists a symbol on both to show the router splitting.
LISTINGS = {"VENUE-A": ("AAPL", "MSFT"), "VENUE-B": ("IBM", "TSLA")}


def listed(venue: str) -> dict[str, Decimal]:
    return {s: REFERENCE[s] for s in LISTINGS[venue]}


def run_stack(tmp_path: Path, db_url: str, listings: dict[str, tuple[str, ...]] | None = None,
              sessions_file: Path = ROOT / "sessions.cfg",
              venue_profiles: dict[str, dict[str, object]] | None = None,
              overrides: dict[str, object] | None = None) -> Iterator[Stack]:
    from fixoms.netutil import free_port
    from venues.simulator import SimulatorServer

    st = Stack(tmp_path, db_url, free_port(), {"VENUE-A": free_port(), "VENUE-B": free_port()},
               sessions_file=sessions_file, venue_profiles=dict(venue_profiles or {}), overrides=dict(overrides or {}))
    seed_credentials(db_url)
    try:
        for i, (name, port) in enumerate(st.venue_ports.items()):
            symbols = {s: REFERENCE[s] for s in (listings or LISTINGS)[name]}
            sim = SimulatorServer(name, port, tmp_path / "venues" / name, seed=i + 1, symbols=symbols)
            st.sims.append(sim)  # before start: close() stops it even if its start fails halfway
            sim.start()
        st.start_engine()
        yield st
    finally:
        st.close()


@pytest.fixture
def stack(tmp_path: Path, db_url: str) -> Iterator[Stack]:
    yield from run_stack(tmp_path, db_url)
