"""Migration 0003 gives every subscription made before it the draft invoice of its period."""

import uuid

import sqlalchemy as sa

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_shared.database import async_database_url
from tollgate_shared.migrations import upgrade


def test_current_periods_get_their_draft_and_numbering_starts_at_one(new_database):
    database_url = new_database("billing_migration_0003")
    upgrade(
        migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="billing", revision="0002"
    )
    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    active_org, trialing_org = uuid.uuid4(), uuid.uuid4()
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO billing.plans (key, name, currency, monthly_price, trial_days,"
                    " rate_limit_tier, metered_charges, created_at, updated_at) VALUES"
                    " ('pro', 'Pro', 'EUR', 99, 14, 'pro', '{}', now(), now())"
                )
            )
            for org_id, status in ((active_org, "active"), (trialing_org, "trialing")):
                customer_id = uuid.uuid4()
                connection.execute(
                    sa.text(
                        "INSERT INTO billing.customers (id, org_id, name, plan_key, created_at,"
                        " updated_at) VALUES (:id, :org, 'Old', 'pro', now(), now())"
                    ),
                    {"id": customer_id, "org": org_id},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO billing.subscriptions (id, customer_id, org_id, plan_key,"
                        " interval, status, anchor_at, period_number, current_period_start,"
                        " current_period_end, trial_used, cancel_at_period_end, version,"
                        " created_at, updated_at) VALUES (gen_random_uuid(), :customer, :org,"
                        " 'pro', 'month', :status, '2026-11-02T08:00:00Z', 0,"
                        " '2026-11-02T08:00:00Z', '2026-12-02T08:00:00Z', true, false, 1, now(),"
                        " now())"
                    ),
                    {"customer": customer_id, "org": org_id, "status": status},
                )
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="billing")
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT org_id, plan_key, currency, base_fee_due, state, number, ended_at,"
                    " to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
                    " FROM billing.invoices"
                )
            ).all()
            last = connection.scalar(
                sa.text("SELECT last_number FROM billing.invoice_number_sequences")
            )
    finally:
        engine.dispose()
    assert sorted((tuple(row) for row in rows), key=lambda row: row[3]) == [
        (trialing_org, "pro", "EUR", False, "draft", None, None, "2026-11-02 08:00"),
        (active_org, "pro", "EUR", True, "draft", None, None, "2026-11-02 08:00"),
    ]
    assert last == 0
