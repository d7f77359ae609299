"""DoneForDay and ExecRestatementReason: orders.done_for_day, children.restatement_reason.

- orders.done_for_day: a GT order (GTC/GTD) its venue ended for the day stays open with DoneForDay
  reported until the next session start renews it (oms.events.OrderDoneForDay / OrderRenewed); a
  restart in between must keep it so.
- children.restatement_reason: the venue's ExecRestatementReason(378) when it ended a child on its own,
  passed on to the client when that ends the order, possibly in a later batch than the venue's report.

Existing rows get false / NULL: no order of an older version was done for the day that way.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("done_for_day", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("children") as batch:
        batch.add_column(sa.Column("restatement_reason", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("children") as batch:
        batch.drop_column("restatement_reason")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("done_for_day")
