"""The append-only log: journal_log (one row per engine batch) and journal_marks replace the outbox.

An old journal's last batch that was committed but not marked sent becomes the log's one record, with
the marks set so that a restart still resends its client messages (PossResend), as before.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_log",
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("batch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "journal_marks",
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("projected", sa.BigInteger, nullable=False),
        sa.Column("sent", sa.BigInteger, nullable=False),
    )
    from oms.projector import BatchRecord

    conn = op.get_bind()
    outbox = sa.table("outbox", sa.column("batch", sa.BigInteger), sa.column("instance", sa.String),
                      sa.column("payload", sa.LargeBinary), sa.column("sent", sa.Boolean))
    last: dict[str, int] = {}
    unsent: dict[str, list[object]] = {}
    for batch, instance, payload, sent in conn.execute(sa.select(outbox).order_by(outbox.c.batch)):
        last[instance] = max(last.get(instance, 0), int(batch))
        if not sent:
            unsent.setdefault(instance, []).extend(pickle.loads(payload))
    log = sa.table("journal_log", sa.column("instance"), sa.column("batch"), sa.column("payload"))
    marks = sa.table("journal_marks", sa.column("instance"), sa.column("projected"), sa.column("sent"))
    for instance, batch in last.items():
        messages = unsent.get(instance, [])
        record = BatchRecord(datetime.now(UTC), [], [], [], messages, [])
        conn.execute(sa.insert(log).values(instance=instance, batch=batch,
                                           payload=pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)))
        done = batch - 1 if messages else batch
        conn.execute(sa.insert(marks).values(instance=instance, projected=done, sent=done))
    op.drop_table("outbox")


def downgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("batch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("sent", sa.Boolean, nullable=False, default=False),
    )
    op.drop_table("journal_marks")
    op.drop_table("journal_log")
