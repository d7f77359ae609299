"""Schema migrations (Alembic, oms/migrations): bring a journal to the schema this version writes.

`upgrade(engine)` runs at `fixoms init-db` and at every engine start. A journal already at the head
costs one query (Alembic itself is imported only when there is something to do: the start of an
up-to-date engine stays fast). A journal created before migrations existed (tables, no
alembic_version) is stamped at the baseline first and upgraded in place from there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine as SAEngine

log = logging.getLogger(__name__)

HEAD = "0006"
BASELINE = "0001"
_SCRIPTS = Path(__file__).with_name("migrations")


def current(engine: SAEngine) -> str | None:
    """The journal's revision; "" for a journal made before migrations, None for an empty database."""
    names = set(inspect(engine).get_table_names())
    if "alembic_version" in names:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() or None
    return "" if "orders" in names else None


def _config(conn: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = conn
    return config


def upgrade(engine: SAEngine, revision: str = "head") -> str | None:
    """Upgrade to `revision`; returns the revision found before (see `current`)."""
    before = current(engine)
    if before == HEAD and revision in ("head", HEAD):
        _check_log_file(engine)
        return before
    from alembic import command

    with engine.begin() as conn:
        config = _config(conn)
        if before == "":
            log.warning("journal made before schema migrations: stamping it at %s, then upgrading", BASELINE)
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
    log.info("journal schema upgraded from %s to %s", before or "an empty database", revision)
    return before


class JournalLogMissing(RuntimeError):
    """A SQLite journal whose log file (oms.schema.log_file) is gone or is not its own."""


def _check_log_file(engine: SAEngine) -> None:
    """A SQLite journal keeps its log in a second file since 0006. Opened without it, SQLite would make an
    empty one, and the engine would number its batches from 1 again, below what the tables already hold:
    refuse to start instead, naming the file."""
    from oms.schema import LOG_DATABASE, attached_log_file

    path = attached_log_file(engine)
    if path is None:
        return
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT 1 FROM {LOG_DATABASE}.sqlite_master WHERE name = 'journal_log'")).first()
    if found is None:
        raise JournalLogMissing(f"the journal's log file {path} is missing or empty: a SQLite journal is "
                                f"{engine.url.database} and {path}; restore both from the same backup")
