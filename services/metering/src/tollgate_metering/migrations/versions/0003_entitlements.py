"""Entitlements: each organisation's plan, per-org overrides, evaluated states, thresholds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "metering"
MODES = "('hard', 'soft')"
STATUSES = "('within', 'grace', 'exceeded', 'removed')"


def _org_meter_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("meter_key", sa.String(63), primary_key=True),
    ]


def upgrade() -> None:
    # Each organisation's plan tier, from the keys service's organization events (later billing's
    # subscription events). changed_at is the event's time: an older event never wins.
    op.create_table(
        "organizations",
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("plan", sa.String(50), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    # An operator's exception to the plan's entitlement; a null limit means unlimited.
    op.create_table(
        "entitlement_overrides",
        *_org_meter_columns(),
        sa.Column("usage_limit", sa.Numeric),
        sa.Column("mode", sa.String(4), nullable=False),
        sa.Column("grace_percent", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"mode IN {MODES}", name="entitlement_overrides_mode"),
        sa.CheckConstraint(
            "grace_percent BETWEEN 0 AND 1000", name="entitlement_overrides_grace_percent"
        ),
        schema=SCHEMA,
    )
    # The last evaluation of each entitlement, as published to the gateway. version grows with
    # every published change, so consumers can drop a state older than one they already hold.
    op.create_table(
        "entitlement_states",
        *_org_meter_columns(),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usage_limit", sa.Numeric),
        sa.Column("mode", sa.String(4), nullable=False),
        sa.Column("grace_percent", sa.Integer, nullable=False),
        sa.Column("used", sa.Numeric, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"mode IN {MODES}", name="entitlement_states_mode"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="entitlement_states_status"),
        schema=SCHEMA,
    )
    # One row per threshold reached: its primary key makes the event fire once per period,
    # limit and percentage, whatever the number of evaluators racing.
    op.create_table(
        "threshold_crossings",
        *_org_meter_columns(),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("usage_limit", sa.Numeric, primary_key=True),
        sa.Column("percent", sa.SmallInteger, primary_key=True),
        sa.Column("used", sa.Numeric, nullable=False),
        sa.Column("crossed_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    # Meters whose usage (or entitlement) changed since their last evaluation, written in the
    # transaction of the change, so a crash between the change and the evaluation loses nothing.
    # Append-only: a mark is never updated, so writers never wait on the evaluator's locks, and
    # a mark committed after the evaluator took its rows is left for its next round.
    op.create_table(
        "usage_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("org_id", sa.Uuid, nullable=False),
        sa.Column("meter_key", sa.String(63), nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "usage_changes",
        "threshold_crossings",
        "entitlement_states",
        "entitlement_overrides",
        "organizations",
    ):
        op.drop_table(table, schema=SCHEMA)
