"""Tax: a rate per customer (exact percent, or none), billed as an invoice line of its own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    # Exact percent (19 = 19 %, 8.875 = 8.875 %); null: no tax, no tax line.
    op.add_column("customers", sa.Column("tax_rate", sa.Numeric), schema=SCHEMA)
    op.create_check_constraint(
        "customers_tax_rate",
        "customers",
        "tax_rate IS NULL OR (tax_rate >= 0 AND tax_rate <= 100)",
        schema=SCHEMA,
    )
    op.drop_constraint("invoice_lines_kind", "invoice_lines", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "invoice_lines_kind",
        "invoice_lines",
        "kind IN ('base_fee', 'proration', 'metered', 'tax')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.invoice_lines WHERE kind = 'tax'")  # noqa: S608
    op.drop_constraint("invoice_lines_kind", "invoice_lines", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "invoice_lines_kind",
        "invoice_lines",
        "kind IN ('base_fee', 'proration', 'metered')",
        schema=SCHEMA,
    )
    op.drop_constraint("customers_tax_rate", "customers", schema=SCHEMA, type_="check")
    op.drop_column("customers", "tax_rate", schema=SCHEMA)
