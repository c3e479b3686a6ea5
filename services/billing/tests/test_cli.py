"""The tollgate-billing command line, run as the operator runs it: a separate process."""

import os
import subprocess
import sys

import sqlalchemy as sa

from tollgate_billing import cli
from tollgate_shared.database import async_database_url


def run_cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollgate_billing.cli", *arguments],
        env={**env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_needs_only_the_database_url(new_database):
    database_url = new_database("billing_cli_migrate")
    result = run_cli("migrate", env={"TOLLGATE_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    again = run_cli("migrate", env={"TOLLGATE_DATABASE_URL": database_url})
    assert again.returncode == 0, again.stderr

    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            tables = set(
                connection.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = 'billing'"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    assert tables == {
        "onboarding_sessions",
        "plans",
        "customers",
        "subscriptions",
        "pending_invoice_items",
        "invoices",
        "invoice_lines",
        "discount_codes",
        "discount_redemptions",
        "invoice_number_sequences",
        "payment_methods",
        "payment_attempts",
        "dunning_policy",
        "stripe_customers",
        "stripe_products",
        "stripe_plans",
        "stripe_invoices",
        "stripe_events",
        "inbox",
        "outbox",
        "dead_letters",
        "alembic_version",
    }


def test_the_service_serves_on_8102_by_default(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_service_command", lambda **kwargs: calls.append(kwargs))
    cli.main()
    [call] = calls
    assert (call["service"], call["default_port"]) == ("billing", 8102)
    assert (call["migrations_dir"] / "versions" / "0001_initial.py").is_file()
