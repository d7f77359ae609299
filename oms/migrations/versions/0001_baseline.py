"""Baseline: the journal as fixoms created it before migrations (create_all at every start).

A journal made by that version has these tables and no alembic_version: `oms.migrate` stamps it at
this revision and upgrades it from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("session", sa.String(128), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("cl_ord_id", sa.String(128), nullable=False),
        sa.Column("orig_cl_ord_id", sa.String(128)),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(1)),
        sa.Column("ord_type", sa.String(1)),
        sa.Column("time_in_force", sa.String(1), nullable=False),
        sa.Column("order_qty", sa.String(40), nullable=False),
        sa.Column("price", sa.String(40)),
        sa.Column("stop_px", sa.String(40)),
        sa.Column("status", sa.String(1), nullable=False),
        sa.Column("pending", sa.String(1)),
        sa.Column("pending_cl_ord_id", sa.String(128)),
        sa.Column("pending_qty", sa.String(40)),
        sa.Column("pending_price", sa.String(40)),
        sa.Column("pending_ord_type", sa.String(1)),
        sa.Column("pending_tif", sa.String(1)),
        sa.Column("expire_time", sa.DateTime(timezone=True)),
        sa.Column("max_floor", sa.String(40)),
        sa.Column("ex_destination", sa.String(64)),
        sa.Column("target_strategy", sa.String(32)),
        sa.Column("arrival_mid", sa.String(40)),
        sa.Column("held", sa.Boolean, nullable=False, default=False),
        sa.Column("expiring", sa.Boolean, nullable=False, default=False),
        sa.Column("cum_qty", sa.String(40), nullable=False),
        sa.Column("notional", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("rej_reason", sa.Integer),
        sa.Column("report_seq", sa.Integer, nullable=False),
        sa.Column("child_seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "children",
        sa.Column("child_id", sa.String(80), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("qty", sa.String(40), nullable=False),
        sa.Column("price", sa.String(40)),
        sa.Column("ord_type", sa.String(1), nullable=False),
        sa.Column("time_in_force", sa.String(1), nullable=False),
        sa.Column("cum_qty", sa.String(40), nullable=False),
        sa.Column("notional", sa.String(40), nullable=False),
        sa.Column("status", sa.String(1), nullable=False),
        sa.Column("venue_order_id", sa.String(128), nullable=False),
        sa.Column("cancel_id", sa.String(96), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("exec_id", sa.String(80), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(80), nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("venue_exec_id", sa.String(128), nullable=False),
        sa.Column("last_qty", sa.String(40), nullable=False),
        sa.Column("last_px", sa.String(40), nullable=False),
        sa.Column("status", sa.String(12), nullable=False, default="ok"),  # ok | busted | corrected
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("venue", "venue_exec_id", name="uq_executions_venue_exec"),
    )
    op.create_table(
        "outbox",
        sa.Column("batch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("sent", sa.Boolean, nullable=False, default=False),
    )
    op.create_table(
        "credentials",
        sa.Column("comp_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("allowed_addresses", sa.Text, nullable=False, default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "cl_ord_ids",
        sa.Column("session", sa.String(128), primary_key=True),
        sa.Column("cl_ord_id", sa.String(128), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_order_id", "events", ["order_id"])
    op.create_index("ix_orders_session", "orders", ["session"])
    op.create_index("ix_orders_account", "orders", ["account"])
    op.create_index("ix_orders_symbol", "orders", ["symbol"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_children_order_id", "children", ["order_id"])
    op.create_index("ix_executions_order_id", "executions", ["order_id"])
    op.create_index("ix_events_instance_kind", "events", ["instance", "kind"])
    op.create_index("ix_children_cancel_id", "children", ["cancel_id"])
    op.create_index("ix_children_status", "children", ["status"])


def downgrade() -> None:
    op.drop_table("cl_ord_ids")
    op.drop_table("audit")
    op.drop_table("credentials")
    op.drop_table("outbox")
    op.drop_table("executions")
    op.drop_table("children")
    op.drop_table("orders")
    op.drop_table("events")
