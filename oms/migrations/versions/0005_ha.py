"""High availability: the primary's lease, the members' reports, QuickFIX's PostgreSQL store tables,
and (PostgreSQL) the trigger that fences those tables.

The journal is fenced by the append itself (oms.journal, oms.lease). The FIX store is written by
QuickFIX's C++ (PostgreSQLStore), which knows nothing of leases: the trigger refuses any write to
`sessions` or `messages` from a connection whose application_name (libpq's PGAPPNAME, set by the HA
engine to its holder id) does not hold a lease. QuickFIX persists every outgoing message before it
writes it to the socket and drops the send when persisting fails (Session::sendRaw), so a paused old
primary that wakes up sends nothing on a FIX session either.

Unlike the journal's append (an INSERT and a COMMIT, between which a paused process would hold its
transaction open), each store write is one autocommit statement: its check and its commit happen inside
the server, which a pause of the engine cannot stretch, and a new primary reads the store only after its
own takeover committed and its sessions were built. So the trigger does not lock the lease row: FOR
SHARE there cost ~100 us a statement (docs/performance.md).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FENCE = """
CREATE OR REPLACE FUNCTION fixoms_fix_store_fence() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ha_lease WHERE holder <> '' AND holder = current_setting('application_name'))
    THEN
        RAISE EXCEPTION 'fixoms HA fence: % does not hold the lease, FIX store write refused',
            current_setting('application_name');
    END IF;
    -- QuickFIX commits each store write on its own (two per message sent): waiting for the WAL flush of
    -- each one cost ~0.9 ms a message here (docs/performance.md). The journal's next append, which is
    -- synchronous, flushes the WAL past these writes; an engine's death loses none of them either way.
    SET LOCAL synchronous_commit = off;
    RETURN COALESCE(NEW, OLD);
END
$$ LANGUAGE plpgsql
"""


def _session_key() -> list[sa.Column[str]]:
    """QuickFIX's SessionID columns (a new list each time: a Column belongs to one table)."""
    return [sa.Column(name, sa.String(length), primary_key=True)
            for name, length in (("beginstring", 8), ("sendercompid", 64), ("targetcompid", 64),
                                 ("session_qualifier", 64))]


def upgrade() -> None:
    op.create_table(
        "ha_lease",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(63), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed", sa.DateTime(timezone=True)),
        sa.Column("acquired", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "ha_members",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(63), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("seen_batch", sa.BigInteger, nullable=False),
        sa.Column("lag_batches", sa.BigInteger, nullable=False),
        sa.Column("lag_events", sa.BigInteger, nullable=False),
        sa.Column("lag_s", sa.Float, nullable=False),
        sa.Column("reported", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sessions", *_session_key(),
        sa.Column("creation_time", sa.DateTime, nullable=False),
        sa.Column("incoming_seqnum", sa.BigInteger, nullable=False),
        sa.Column("outgoing_seqnum", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "messages", *_session_key(),
        sa.Column("msgseqnum", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FENCE)
        for table in ("sessions", "messages"):
            op.execute(f"CREATE TRIGGER fixoms_fence BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION fixoms_fix_store_fence()")


def downgrade() -> None:
    for table in ("messages", "sessions", "ha_members", "ha_lease"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS fixoms_fix_store_fence()")
