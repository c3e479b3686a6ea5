"""The tollgate-metering command line, run as the operator runs it: a separate process."""

import os
import subprocess
import sys

import sqlalchemy as sa

from tollgate_shared.database import async_database_url

from .conftest import TABLES


def test_migrate_needs_only_the_database_url(new_database):
    database_url = new_database("metering_cli_migrate")
    result = subprocess.run(
        [sys.executable, "-m", "tollgate_metering.cli", "migrate"],
        env={"TOLLGATE_DATABASE_URL": database_url, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            tables = set(
                connection.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = 'metering'"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    assert tables == {*TABLES, "inbox", "outbox", "dead_letters", "alembic_version"}
