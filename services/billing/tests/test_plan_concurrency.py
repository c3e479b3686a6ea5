"""A price change and a plan's first customer never cross: real commits, two connections."""

import asyncio
import uuid

import sqlalchemy as sa

from .conftest import assert_problem


async def test_a_price_change_waits_for_a_first_customer_then_is_refused(
    committed_app, committing_client, operator
):
    key = f"race-{uuid.uuid4().hex[:8]}"
    created = await committing_client.post(
        "/v1/billing/admin/plans",
        json={"key": key, "name": "Race", "monthly_price": "10"},
        headers=operator,
    )
    assert created.status_code == 201, created.text

    async with committed_app.state.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            sa.text(
                "INSERT INTO billing.customers (id, org_id, name, plan_key, created_at, updated_at)"
                " VALUES (:id, :org, 'Racer', :plan, now(), now())"
            ),
            {"id": uuid.uuid4(), "org": uuid.uuid4(), "plan": key},
        )
        change = asyncio.create_task(
            committing_client.patch(
                f"/v1/billing/admin/plans/{key}", json={"monthly_price": "12"}, headers=operator
            )
        )
        await asyncio.sleep(0.5)
        # The customer's insert holds a share lock on the plan row: the change waits for it.
        assert not change.done()
    response = await change
    assert_problem(response, 409, "plan-has-customers")
    plan = await committing_client.get(f"/v1/billing/admin/plans/{key}", headers=operator)
    assert (plan.json()["monthly_price"], plan.json()["customers"]) == ("10.00", 1)


async def test_the_openapi_spec_describes_the_billing_routes(committing_client):
    spec = (await committing_client.get("/openapi.json")).json()
    assert {
        "/v1/billing/plans",
        "/v1/billing/plans/{key}",
        "/v1/billing/customer",
        "/v1/billing/admin/plans",
        "/v1/billing/admin/plans/{key}",
        "/v1/billing/subscription",
        "/v1/billing/subscription/change",
        "/v1/billing/subscription/cancel",
        "/v1/billing/subscription/resume",
    } <= set(spec["paths"])
    assert "PlanCreate" in spec["components"]["schemas"]
