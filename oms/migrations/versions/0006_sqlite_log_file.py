"""SQLite: journal_log moves to a database file of its own (oms.schema.log_file), so that the engine's
appends and the projector's passes take different write locks. PostgreSQL and in-memory SQLite: nothing.

Idempotent, because SQLite commits a transaction over two WAL databases file by file: if a crash left the
log copied but the old table not dropped, this runs again (the revision is written in the main file with
the drop) and copies again. A log table already in the log file is replaced, never merged: it can only
be that interrupted copy, or a stale file left from another journal of the same name.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LOG = "log"  # oms.schema.LOG_DATABASE, as of this revision


def _log_table(schema: str | None) -> sa.Table:
    return sa.Table(
        "journal_log", sa.MetaData(),
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("batch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        schema=schema,
    )


def _has_log_database(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite" and any(
        row[1] == LOG for row in conn.exec_driver_sql("PRAGMA database_list"))


def _move(conn: sa.Connection, source: str, target: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {target}.journal_log")
    _log_table(target).create(conn)
    conn.exec_driver_sql(f"INSERT INTO {target}.journal_log (instance, batch, payload) "
                         f"SELECT instance, batch, payload FROM {source}.journal_log")
    conn.exec_driver_sql(f"DROP TABLE {source}.journal_log")


def upgrade() -> None:
    conn = op.get_bind()
    if _has_log_database(conn):
        _move(conn, "main", LOG)


def downgrade() -> None:
    conn = op.get_bind()
    if _has_log_database(conn):
        _move(conn, LOG, "main")
