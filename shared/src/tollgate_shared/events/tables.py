"""The kit's own tables, created in every service's schema by its first migration.

Declared without a schema: the engine's schema_translate_map places them in the service schema.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

kit_metadata = sa.MetaData()


def _outbox_columns() -> list[sa.Column]:  # type: ignore[type-arg,unused-ignore]
    return [
        sa.Column("id", UUID(as_uuid=True), primary_key=True),  # the CloudEvent id
        # Publication order (commit order within a transaction); never used as a read cursor.
        sa.Column("position", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    ]


def _inbox_columns() -> list[sa.Column]:  # type: ignore[type-arg,unused-ignore]
    return [
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def _dead_letter_columns() -> list[sa.Column]:  # type: ignore[type-arg,unused-ignore]
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


_COLUMNS = {
    "outbox": _outbox_columns,
    "inbox": _inbox_columns,
    "dead_letters": _dead_letter_columns,
}
outbox = sa.Table("outbox", kit_metadata, *_outbox_columns())
inbox = sa.Table("inbox", kit_metadata, *_inbox_columns())
dead_letters = sa.Table("dead_letters", kit_metadata, *_dead_letter_columns())


def create_kit_tables(schema: str) -> None:
    """Call from a service's first migration."""
    for name, columns in _COLUMNS.items():
        op.create_table(name, *columns(), schema=schema)
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["position"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def drop_kit_tables(schema: str) -> None:
    for table in (dead_letters, inbox, outbox):
        op.drop_table(table.name, schema=schema)
