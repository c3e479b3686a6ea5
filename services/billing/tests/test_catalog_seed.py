"""The catalog of the settings reaches the database at start, without undoing an operator's
changes."""

from decimal import Decimal

import httpx

from tollgate_billing.catalog.schemas import PlanCreate
from tollgate_billing.catalog.service import seed_catalog

from .conftest import running_app


async def test_seeding_creates_only_missing_plans(client, operator, db, settings):
    renamed = await client.patch(
        "/v1/billing/admin/plans/pro", json={"name": "Pro (2026)"}, headers=operator
    )
    assert renamed.status_code == 200
    await client.delete("/v1/billing/admin/plans/enterprise", headers=operator)
    catalog = [
        *settings.catalog,
        PlanCreate(key="team", name="Team", monthly_price=Decimal("29")),
    ]
    async with db() as session, session.begin():
        assert await seed_catalog(session, catalog=catalog) == ["team"]
        assert await seed_catalog(session, catalog=catalog) == []

    plans = (
        await client.get(
            "/v1/billing/admin/plans", params={"include_archived": True}, headers=operator
        )
    ).json()
    by_key = {plan["key"]: plan for plan in plans}
    assert by_key["pro"]["name"] == "Pro (2026)"
    assert by_key["enterprise"]["archived_at"] is not None
    assert by_key["team"]["monthly_price"] == "29.00"


async def test_a_restart_keeps_the_operators_catalog(
    new_database, nats_url, identity_keys, operator
):
    database_url = new_database("billing_restart")
    async with running_app(
        database_url=database_url, nats_url=nats_url, identity_public_key=identity_keys[1]
    ) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
            changed = await http.patch(
                "/v1/billing/admin/plans/pro", json={"monthly_price": "89"}, headers=operator
            )
            assert changed.status_code == 200, changed.text
    async with running_app(
        database_url=database_url, nats_url=nats_url, identity_public_key=identity_keys[1]
    ) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
            plans = (await http.get("/v1/billing/admin/plans", headers=operator)).json()
    assert {plan["key"]: plan["monthly_price"] for plan in plans} == {
        "free": "0.00",
        "pro": "89.00",
        "enterprise": "999.00",
    }
