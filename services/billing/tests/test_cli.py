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
        "stripe_sync_backoffs",
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
    assert set(call["operator_commands"]) == {
        "close-periods",
        "collect-payments",
        "stripe-sync-catalog",
    }


def test_operator_commands_run_the_jobs_once(new_database, identity_keys):
    from tollgate_shared.identity import generate_keypair

    database_url = new_database("billing_cli_jobs")
    assert run_cli("migrate", env={"TOLLGATE_DATABASE_URL": database_url}).returncode == 0
    env = {
        "TOLLGATE_ENV": "test",
        "TOLLGATE_DATABASE_URL": database_url,
        # The service's own environment: the commands write events to the outbox only.
        "TOLLGATE_NATS_URL": "nats://nats.invalid:4222",
        "TOLLGATE_IDENTITY_PUBLIC_KEY": identity_keys[1],
        "TOLLGATE_BILLING_METERING_URL": "http://metering.invalid",
        "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY": generate_keypair()[0],
    }
    closed = run_cli("close-periods", env=env)
    assert (closed.returncode, closed.stdout.strip()) == (0, "0 invoice(s) finalized"), closed
    collected = run_cli("collect-payments", env=env)
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout.strip() == "0 invoice(s) collected, 0 dunning action(s)"
    # Stripe's command says plainly when Stripe is off.
    stripe = run_cli("stripe-sync-catalog", env=env)
    assert stripe.returncode != 0
    assert "TOLLGATE_BILLING_STRIPE_SECRET_KEY is not set" in stripe.stderr
    listed = run_cli("--help", env=env).stdout
    for command in ("migrate", "serve", "close-periods", "collect-payments", "stripe-sync-catalog"):
        assert command in listed
