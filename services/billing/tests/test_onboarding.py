"""Self-serve onboarding: the steps in order, each idempotent, a skipped required step a 409
naming it, bad input a clear 4xx, one organisation never seeing another's."""

import sqlalchemy as sa

from tollgate_billing.db_types import utcnow

from .conftest import assert_problem
from .subscription_helpers import new_subscription

TEST_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035}


async def signed_up(db, org) -> None:
    await new_subscription(db, org_id=org.org_id, plan="free", now=utcnow())


async def discount_code(client, operator, code: str, plans: list[str]) -> None:
    response = await client.post(
        "/v1/billing/admin/discounts",
        json={"code": code, "percent": "20", "duration": "once", "plans": plans},
        headers=operator,
    )
    assert response.status_code == 201, response.text


async def completed_events(db, org) -> int:
    async with db() as session:
        return await session.scalar(
            sa.text(
                "SELECT count(*) FROM billing.outbox WHERE payload->>'orgid' = :org"
                " AND subject = 'tollgate.billing.onboarding.completed'"
            ),
            {"org": str(org.org_id)},
        )


async def test_a_paid_plan_in_order_with_a_discount_and_retries(client, db, acme, operator):
    await signed_up(db, acme)
    await discount_code(client, operator, "WELCOME20", ["pro"])
    admin = acme.user("org_admin")

    started = await client.post("/v1/onboarding", headers=admin)
    assert started.status_code == 201, started.text
    assert started.json()["next_step"] == "choose_plan"
    again = await client.post("/v1/onboarding", headers=admin)
    assert (again.status_code, again.json()["id"]) == (200, started.json()["id"])

    # Skipping is refused, naming what is missing.
    body = assert_problem(
        await client.post("/v1/onboarding/subscription", headers=admin),
        409,
        "onboarding-step-missing",
    )
    assert body["missing_steps"] == ["choose_plan", "add_payment_method"]

    choice = {"plan": "pro", "interval": "month", "discount_code": "welcome20"}
    chosen = await client.put("/v1/onboarding/plan", json=choice, headers=admin)
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["next_step"] == "add_payment_method"
    assert (await client.put("/v1/onboarding/plan", json=choice, headers=admin)).status_code == 200

    body = assert_problem(
        await client.post("/v1/onboarding/complete", headers=admin), 409, "onboarding-step-missing"
    )
    assert body["missing_steps"] == ["add_payment_method", "start_subscription"]

    card = await client.post("/v1/onboarding/payment-method", json=TEST_CARD, headers=admin)
    assert card.status_code == 200, card.text
    assert card.json()["payment_method"]["last4"] == "4242"
    assert card.json()["next_step"] == "start_subscription"

    for _ in range(2):  # a retry changes nothing
        subscribed = await client.post("/v1/onboarding/subscription", headers=admin)
        assert subscribed.status_code == 200, subscribed.text
        assert subscribed.json()["next_step"] == "complete"
    subscription = (await client.get("/v1/billing/subscription", headers=admin)).json()
    assert (subscription["plan"], subscription["status"]) == ("pro", "trialing")
    discount = await client.get("/v1/billing/discount", headers=admin)
    assert discount.json()["code"] == "WELCOME20"

    # Once subscribed, the choice is final here (the subscription API changes plans).
    assert_problem(
        await client.put("/v1/onboarding/plan", json={"plan": "enterprise"}, headers=admin),
        409,
        "onboarding-step-closed",
    )

    for _ in range(2):
        done = await client.post("/v1/onboarding/complete", headers=admin)
        assert done.status_code == 200, done.text
    view = (await client.get("/v1/onboarding", headers=acme.key("read"))).json()
    assert view["status"] == "completed"
    assert view["next_step"] is None
    assert all(step["done"] for step in view["steps"])
    assert await completed_events(db, acme) == 1


async def test_a_free_plan_needs_no_payment_method(client, db, acme):
    await signed_up(db, acme)
    admin = acme.user("billing_admin")
    await client.post("/v1/onboarding", headers=admin)
    chosen = await client.put("/v1/onboarding/plan", json={"plan": "free"}, headers=admin)
    payment = next(s for s in chosen.json()["steps"] if s["name"] == "add_payment_method")
    assert (payment["required"], payment["done"]) == (False, False)
    assert chosen.json()["next_step"] == "start_subscription"
    assert (await client.post("/v1/onboarding/subscription", headers=admin)).status_code == 200
    done = await client.post("/v1/onboarding/complete", headers=admin)
    assert done.json()["status"] == "completed"


async def test_bad_choices_are_clear_problems(client, db, acme, operator):
    await signed_up(db, acme)
    await discount_code(client, operator, "ENTONLY", ["enterprise"])
    admin = acme.user("org_admin")
    await client.post("/v1/onboarding", headers=admin)

    async def choose(body):
        return await client.put("/v1/onboarding/plan", json=body, headers=admin)

    assert_problem(await choose({"plan": "platinum"}), 404, "plan-not-found")
    assert_problem(
        await choose({"plan": "enterprise", "interval": "year"}), 409, "interval-not-offered"
    )
    assert_problem(
        await choose({"plan": "pro", "discount_code": "NOPE"}), 404, "discount-not-found"
    )
    assert_problem(
        await choose({"plan": "pro", "discount_code": "ENTONLY"}), 409, "discount-not-eligible"
    )
    assert_problem(await choose({"plan": "pro", "seats": 3}), 422)
    assert_problem(await choose({"plan": "Pro!"}), 422)
    assert_problem(
        await client.put("/v1/onboarding/plan", content=b"{not json", headers=admin), 422
    )
    # Nothing was recorded by the refused choices.
    view = (await client.get("/v1/onboarding", headers=admin)).json()
    assert view["plan"] is None


async def test_who_may_onboard_and_cross_org_isolation(client, db, acme, globex):
    await signed_up(db, acme)
    await signed_up(db, globex)
    assert_problem(await client.post("/v1/onboarding", headers=acme.user("member")), 403)
    assert_problem(await client.post("/v1/onboarding", headers=acme.key("read")), 403)
    assert (await client.post("/v1/onboarding", headers=acme.key("admin"))).status_code == 201
    await client.put("/v1/onboarding/plan", json={"plan": "free"}, headers=acme.key("admin"))

    # Globex has started nothing and sees nothing of Acme's.
    assert_problem(
        await client.get("/v1/onboarding", headers=globex.user()), 404, "onboarding-not-found"
    )
    assert_problem(
        await client.put(
            "/v1/onboarding/plan", json={"plan": "free"}, headers=globex.user("org_admin")
        ),
        404,
        "onboarding-not-found",
    )
    assert (await client.get("/v1/onboarding", headers=acme.user())).json()["plan"] == "free"


async def test_an_organisation_billing_has_not_heard_of_yet_is_asked_to_retry(client, acme):
    assert_problem(
        await client.post("/v1/onboarding", headers=acme.user("org_admin")),
        409,
        "customer-not-ready",
    )


async def test_with_stripe_on_the_card_step_is_a_checkout_done_by_its_webhook(
    stripe_client, stripe_app, localstripe, acme
):
    from .conftest import deliver, stripe_event

    await new_subscription(stripe_app.state.sessionmaker, org_id=acme.org_id, now=utcnow())
    admin = acme.user("org_admin")
    assert (await stripe_client.post("/v1/onboarding", headers=admin)).status_code == 201
    await stripe_client.put("/v1/onboarding/plan", json={"plan": "pro"}, headers=admin)
    # Card numbers never reach Tollgate with Stripe on: they go to Stripe's page.
    assert_problem(
        await stripe_client.post("/v1/onboarding/payment-method", json=TEST_CARD, headers=admin),
        409,
        "payment-method-through-provider",
    )

    step = await stripe_client.post("/v1/onboarding/payment-method", headers=admin)
    assert step.status_code == 200, step.text
    checkout = step.json()["checkout"]
    assert checkout["url"].startswith("https://")
    assert step.json()["next_step"] == "add_payment_method"  # until Stripe says so

    await localstripe.complete_checkout(checkout["id"], "4242424242424242")
    event = await stripe_event(localstripe, "checkout.session.completed", checkout["id"])
    assert (await deliver(stripe_client, localstripe, event)).json()["outcome"] == "applied"

    view = (await stripe_client.get("/v1/onboarding", headers=admin)).json()
    assert view["next_step"] == "start_subscription"
    assert (view["payment_method"]["provider"], view["payment_method"]["last4"]) == (
        "stripe",
        "4242",
    )
    subscribed = await stripe_client.post("/v1/onboarding/subscription", headers=admin)
    assert subscribed.json()["next_step"] == "complete", subscribed.text
