"""Venue amends: children.venue_cl_ord_id, amend_id, amend_qty, amend_price.

A client's replace is sent to the child's venue as an OrderCancelReplaceRequest where the working child
can carry it (oms.decider._amend_terms). The venue then knows the child by the amend's ClOrdID, and an
amend it has not answered must survive a restart so that its answer still applies.

Existing rows get "" / NULL: no child of an older version was ever amended.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("children") as batch:
        batch.add_column(sa.Column("venue_cl_ord_id", sa.String(96), nullable=False, server_default=""))
        batch.add_column(sa.Column("amend_id", sa.String(96), nullable=False, server_default=""))
        batch.add_column(sa.Column("amend_qty", sa.String(40)))
        batch.add_column(sa.Column("amend_price", sa.String(40)))
    op.create_index("ix_children_venue_cl_ord_id", "children", ["venue_cl_ord_id"])


def downgrade() -> None:
    op.drop_index("ix_children_venue_cl_ord_id", "children")
    with op.batch_alter_table("children") as batch:
        for name in ("amend_price", "amend_qty", "amend_id", "venue_cl_ord_id"):
            batch.drop_column(name)
