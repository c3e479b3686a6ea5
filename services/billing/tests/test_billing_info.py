"""GET /v1/billing/info: the organisation's billing page in one read."""

from datetime import timedelta

from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.metering_usage import MeteringUsageClient
from tollgate_shared.identity import generate_keypair

from .conftest import assert_problem
from .subscription_helpers import new_subscription

TEST_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035}


async def test_plan_status_method_discount_usage_and_projection(
    client, db, metering, acme, operator
):
    now = utcnow()
    await new_subscription(db, org_id=acme.org_id, plan="pro", now=now - timedelta(minutes=5))
    await client.post(
        "/v1/billing/admin/discounts",
        json={"code": "INFO10", "percent": "10", "duration": "forever"},
        headers=operator,
    )
    admin = acme.user("org_admin")
    assert (
        await client.post("/v1/billing/discount", json={"code": "INFO10"}, headers=admin)
    ).status_code == 201
    assert (
        await client.put("/v1/billing/payment-method", json=TEST_CARD, headers=admin)
    ).status_code == 200
    await metering.store(
        acme.org_id,
        *[("api_requests", "k", now - timedelta(minutes=2), {"meter": "api_requests"})] * 3,
    )

    response = await client.get("/v1/billing/info", headers=acme.key("read"))
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["organization_id"] == str(acme.org_id)
    assert (info["plan"]["key"], info["subscription"]["status"]) == ("pro", "active")
    assert info["payment_method"]["last4"] == "4242"
    assert info["discount"]["code"] == "INFO10"
    assert info["usage"] == {"api_requests": "3"}
    upcoming = info["upcoming_invoice"]
    kinds = [line["kind"] for line in upcoming["lines"]]
    assert kinds == ["base_fee", "metered", "discount"]
    assert upcoming["total"] == 9900 - 990  # $99, 3 requests within the included million, -10 %
    assert info["unavailable"] == []


async def test_metering_down_leaves_the_rest_of_the_page(client, db, acme, billing_app):
    configured = billing_app.state.metering_usage
    billing_app.state.metering_usage = MeteringUsageClient(
        base_url="http://metering.invalid", private_key=generate_keypair()[0]
    )
    try:
        await new_subscription(db, org_id=acme.org_id, plan="free", now=utcnow())
        response = await client.get("/v1/billing/info", headers=acme.user())
    finally:
        billing_app.state.metering_usage = configured
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["plan"]["key"] == "free"
    assert info["payment_method"] is None
    assert (info["usage"], info["upcoming_invoice"]) == (None, None)
    assert info["unavailable"] == ["usage", "upcoming_invoice"]


async def test_an_organisation_without_a_customer_is_not_found(client, acme, globex, db):
    await new_subscription(db, org_id=acme.org_id, plan="free", now=utcnow())
    assert_problem(await client.get("/v1/billing/info", headers=globex.user()), 404)
    assert_problem(await client.get("/v1/billing/info", headers=acme.key("write")), 403)
