"""Alembic per service: each service migrates only its own schema, version table included."""

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config

from tollgate_shared.database import async_database_url


def alembic_config(*, migrations_dir: Path, database_url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # psycopg 3 serves both sync (Alembic) and async (the app) connections.
    config.set_main_option("sqlalchemy.url", async_database_url(database_url).replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade(
    *, migrations_dir: Path, database_url: str, schema: str, revision: str = "head"
) -> None:
    command.upgrade(
        alembic_config(migrations_dir=migrations_dir, database_url=database_url, schema=schema),
        revision,
    )


async def upgrade_async(**kwargs: str | Path) -> None:
    await asyncio.to_thread(upgrade, **kwargs)  # type: ignore[arg-type]


def run_migrations_online() -> None:
    """Body of every service's migrations/env.py."""
    config = context.config
    schema: str = config.attributes["schema"]
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool)
    with engine.connect() as connection:
        # Serialise concurrent migrators (several replicas starting at once).
        connection.execute(
            sa.text("SELECT pg_advisory_lock(hashtext(:schema))"), {"schema": schema}
        )
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        connection = connection.execution_options(schema_translate_map={None: schema})
        context.configure(
            connection=connection,
            version_table_schema=schema,
            include_schemas=False,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.execute(
            sa.text("SELECT pg_advisory_unlock(hashtext(:schema))"), {"schema": schema}
        )
        connection.commit()
    engine.dispose()
