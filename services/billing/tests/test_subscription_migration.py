"""Migration 0002 gives every customer made before it a subscription on its plan."""

import uuid

import sqlalchemy as sa

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_shared.database import async_database_url
from tollgate_shared.migrations import upgrade


def test_existing_customers_get_a_monthly_subscription_on_their_plan(new_database):
    database_url = new_database("billing_migration_0002")
    upgrade(
        migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="billing", revision="0001"
    )
    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    free_org, pro_org = uuid.uuid4(), uuid.uuid4()
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO billing.plans (key, name, currency, monthly_price, trial_days,"
                    " rate_limit_tier, metered_charges, created_at, updated_at) VALUES"
                    " ('free', 'Free', 'USD', 0, 0, 'free', '{}', now(), now()),"
                    " ('pro', 'Pro', 'USD', 99, 14, 'pro', '{}', now(), now())"
                )
            )
            for org_id, plan in ((free_org, "free"), (pro_org, "pro")):
                connection.execute(
                    sa.text(
                        "INSERT INTO billing.customers (id, org_id, name, plan_key, created_at,"
                        " updated_at) VALUES (:id, :org, 'Old', :plan, now(), now())"
                    ),
                    {"id": uuid.uuid4(), "org": org_id, "plan": plan},
                )
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="billing")
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT s.org_id, s.plan_key, s.interval, s.status, s.trial_used, s.version,"
                    " s.current_period_end - s.current_period_start >= interval '28 days',"
                    " s.current_period_start = date_trunc('second', s.current_period_start)"
                    " FROM billing.subscriptions AS s JOIN billing.customers AS c"
                    " ON c.id = s.customer_id"
                )
            ).all()
    finally:
        engine.dispose()
    assert sorted((tuple(row) for row in rows), key=lambda row: row[1]) == [
        (free_org, "free", "month", "active", False, 1, True, True),
        (pro_org, "pro", "month", "active", True, 1, True, True),
    ]
