"""Discount codes: the operator's catalog, redeeming, and the discount line of invoices."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tollgate_billing.subscriptions.roller import roll_due_subscriptions

from .conftest import Org, assert_problem
from .subscription_helpers import new_subscription
from .test_invoices import END, GRACE, START, close, ended_period, metered_plan

ADMIN = "/v1/billing/admin/discounts"
REDEEM = "/v1/billing/discount"
MONTH_ENDS = [END, datetime(2026, 5, 14, 10, 47, 42, tzinfo=UTC)]


async def code(client, operator, **fields) -> dict:
    body = {"code": f"C{uuid.uuid4().hex[:10]}", "duration": "once", **fields}
    response = await client.post(ADMIN, json=body, headers=operator)
    assert response.status_code == 201, response.text
    return response.json()


async def redeem(client, org, name: str, status: int = 201):
    response = await client.post(REDEEM, json={"code": name}, headers=org.user("billing_admin"))
    assert response.status_code == status, response.text
    return response.json()


async def invoice_lines(client, db, billing_app, org, now) -> tuple[list, int]:
    [invoice_id] = await close(db, billing_app, now)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=org.user())).json()
    assert invoice["total"] == sum(line["amount"] for line in invoice["lines"])
    return [(line["kind"], line["amount"]) for line in invoice["lines"]], invoice["total"]


async def test_a_full_discount_still_issues_a_zero_invoice_and_tax_is_on_the_rest(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, await metered_plan(db))
    full = await code(client, operator, percent="100")
    await redeem(client, acme, full["code"].lower())  # case-insensitive
    await client.put(
        f"/v1/billing/admin/customers/{acme.org_id}/tax", json={"rate": "19"}, headers=operator
    )
    lines, total = await invoice_lines(client, db, billing_app, acme, END + GRACE)
    assert lines == [("base_fee", 1000), ("metered", 0), ("discount", -1000), ("tax", 0)]
    assert total == 0
    # Once: used up by that invoice.
    assert_problem(await client.get(REDEEM, headers=acme.user()), 404, "discount-not-found")


async def test_a_percent_rounds_once_and_tax_follows_the_discounted_subtotal(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, await metered_plan(db))
    await redeem(client, acme, (await code(client, operator, percent="12.345"))["code"])
    await client.put(
        f"/v1/billing/admin/customers/{acme.org_id}/tax", json={"rate": "10"}, headers=operator
    )
    lines, total = await invoice_lines(client, db, billing_app, acme, END + GRACE)
    # 12.345 % of 1000 = 123.45 cents → 123; tax 10 % of 877 = 87.7 → 88.
    assert lines == [("base_fee", 1000), ("metered", 0), ("discount", -123), ("tax", 88)]
    assert total == 965


async def test_a_fixed_amount_never_takes_the_invoice_below_zero(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, await metered_plan(db))
    big = await code(client, operator, amount_off=5000, currency="USD")
    await redeem(client, acme, big["code"])
    lines, total = await invoice_lines(client, db, billing_app, acme, END + GRACE)
    assert lines == [("base_fee", 1000), ("metered", 0), ("discount", -1000)]
    assert total == 0


async def test_a_fixed_amount_in_another_currency_is_not_applied(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, await metered_plan(db))
    euros = await code(client, operator, amount_off=500, currency="EUR")
    await redeem(client, acme, euros["code"])
    lines, _ = await invoice_lines(client, db, billing_app, acme, END + GRACE)
    assert lines == [("base_fee", 1000), ("metered", 0)]
    # Not applied, so not used: still running.
    assert (await client.get(REDEEM, headers=acme.user())).json()["periods_left"] == 1


async def test_an_invoice_of_nothing_spends_no_period(
    client, db, billing_app, metering, acme, operator
):
    """A trial's $0 invoice (here: a free plan's) leaves a once code for the first one owed."""
    await ended_period(db, acme, "free")
    welcome = await code(client, operator, percent="20")
    await redeem(client, acme, welcome["code"])
    lines, total = await invoice_lines(client, db, billing_app, acme, END + GRACE)
    assert ("discount" not in [kind for kind, _ in lines], total) == (True, 0)
    assert (await client.get(REDEEM, headers=acme.user())).json()["periods_left"] == 1


async def test_once_repeating_and_forever_over_three_closes(
    client, db, billing_app, metering, acme, operator
):
    plan = await metered_plan(db)
    await new_subscription(db, org_id=acme.org_id, plan=plan, now=START, trial_used=True)
    await redeem(
        client,
        acme,
        (await code(client, operator, percent="50", duration="repeating", periods=2))["code"],
    )
    amounts = []
    for end in [*MONTH_ENDS, datetime(2026, 6, 14, 10, 47, 42, tzinfo=UTC)]:
        await roll_due_subscriptions(db, default_plan="free", now=end + timedelta(seconds=1))
        lines, _ = await invoice_lines(client, db, billing_app, acme, end + GRACE)
        amounts.append([amount for kind, amount in lines if kind == "discount"])
        # A rerun of the close finds nothing: the period is not used twice.
        assert await close(db, billing_app, end + GRACE * 2) == []
    assert amounts == [[-500], [-500], []]
    assert_problem(await client.get(REDEEM, headers=acme.user()), 404)
    # Used up: another code may be redeemed; forever stays.
    forever = await code(client, operator, percent="10", duration="forever")
    assert (await redeem(client, acme, forever["code"]))["periods_left"] is None
    end = datetime(2026, 7, 14, 10, 47, 42, tzinfo=UTC)
    await roll_due_subscriptions(db, default_plan="free", now=end + timedelta(seconds=1))
    lines, _ = await invoice_lines(client, db, billing_app, acme, end + GRACE)
    assert ("discount", -100) in lines
    assert (await client.get(REDEEM, headers=acme.user())).json()["periods_left"] is None


async def test_redeeming_refuses_what_it_must(client, db, acme, globex, operator):
    await ended_period(db, acme, await metered_plan(db))
    await new_subscription(db, org_id=globex.org_id, plan="free", now=START)
    expired = await code(client, operator, percent="5", expires_at="2020-01-01T00:00:00Z")
    archived = await code(client, operator, percent="5")
    assert (await client.delete(f"{ADMIN}/{archived['code']}", headers=operator)).json()[
        "archived_at"
    ]
    # Unknown, expired and archived codes all read as unknown.
    for name in ("NOPE", expired["code"], archived["code"]):
        assert_problem(
            await client.post(REDEEM, json={"code": name}, headers=acme.user("org_admin")),
            404,
            "discount-not-found",
        )
    pro_only = await code(client, operator, percent="5", plans=["pro"])
    assert_problem(
        await client.post(REDEEM, json={"code": pro_only["code"]}, headers=acme.key("admin")),
        409,
        "discount-not-eligible",
    )
    single = await code(client, operator, percent="5", max_redemptions=1)
    await redeem(client, acme, single["code"])
    assert_problem(
        await client.post(REDEEM, json={"code": single["code"]}, headers=globex.user("org_admin")),
        409,
        "discount-exhausted",
    )
    again = await code(client, operator, percent="7")
    assert_problem(
        await client.post(REDEEM, json={"code": again["code"]}, headers=acme.user("org_admin")),
        409,
        "discount-already-applied",
    )
    # Each organisation sees its own discount only.
    assert (await client.get(REDEEM, headers=acme.key("read"))).json()["code"] == single["code"]
    assert_problem(await client.get(REDEEM, headers=globex.user()), 404)
    # Only an org_admin, billing_admin or admin key redeems.
    assert_problem(
        await client.post(REDEEM, json={"code": again["code"]}, headers=globex.user()), 403
    )
    assert_problem(
        await client.post(REDEEM, json={"code": again["code"]}, headers=globex.key("write")), 403
    )
    listed = (await client.get(f"{ADMIN}?include_archived=true", headers=operator)).json()
    assert {d["code"]: d["redemptions"] for d in listed}[single["code"]] == 1


async def test_bad_discount_codes_are_clear_422(client, acme, operator):
    good = {"code": "SPRING", "percent": "10", "duration": "once"}
    # Each is a 422 naming the field at fault.
    for bad, field in (
        ({"percent": "0"}, "percent"),
        ({"percent": "100.5"}, "percent"),
        ({"percent": "NaN"}, "percent"),
        ({"percent": "1.0000001"}, "percent"),
        ({"percent": None, "amount_off": None}, "amount_off"),
        ({"amount_off": 500}, "amount_off"),  # both
        ({"percent": None, "amount_off": 500}, "currency"),  # no currency
        ({"currency": "USD"}, "currency"),  # a currency for a percent
        ({"percent": None, "amount_off": -5, "currency": "USD"}, "amount_off"),
        ({"percent": None, "amount_off": 5.5, "currency": "USD"}, "amount_off"),
        ({"percent": None, "amount_off": 5, "currency": "usd"}, "currency"),
        ({"duration": "sometimes"}, "duration"),
        ({"duration": "repeating"}, "periods"),  # no periods
        ({"periods": 3}, "periods"),  # periods without repeating
        ({"duration": "repeating", "periods": 0}, "periods"),
        ({"max_redemptions": 0}, "max_redemptions"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2027-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"plans": []}, "plans"),
        ({"plans": ["Not A Plan"]}, "plans"),
        ({"code": ""}, "code"),
        ({"code": "has space"}, "code"),
        ({"extra": 1}, "extra"),
    ):
        problem = assert_problem(
            await client.post(ADMIN, json={**good, **bad}, headers=operator), 422
        )
        assert {error["loc"][1] for error in problem["errors"]} == {field}, (bad, problem)
    created = await client.post(ADMIN, json=good, headers=operator)
    assert created.status_code == 201, created.text
    assert created.json()["percent"] == "10"
    assert_problem(
        await client.post(ADMIN, json={**good, "code": "spring"}, headers=operator),
        409,
        "discount-code-taken",
    )
    assert (await client.get(f"{ADMIN}/Spring", headers=operator)).json()["code"] == "SPRING"
    assert_problem(await client.get(f"{ADMIN}/nope", headers=operator), 404)
    assert_problem(await client.post(ADMIN, json=good, headers=acme.user("org_admin")), 403)
    assert_problem(await client.post(REDEEM, json={}, headers=acme.user("org_admin")), 422)
    # An organisation billing does not know yet.
    assert_problem(
        await client.post(REDEEM, json={"code": "SPRING"}, headers=acme.user("org_admin")),
        404,
        "customer-not-found",
    )


async def test_two_redemptions_of_the_last_use_at_once_one_wins(
    committed_app, committing_client, mint_identity, operator
):
    sessions = committed_app.state.runtime.sessionmaker
    orgs = [Org(uuid.uuid4(), mint_identity) for _ in range(2)]
    for org in orgs:
        await new_subscription(sessions, org_id=org.org_id, plan="free", now=datetime.now(UTC))
    single = await code(committing_client, operator, percent="5", max_redemptions=1)
    responses = await asyncio.gather(
        *(
            committing_client.post(
                REDEEM, json={"code": single["code"]}, headers=org.user("org_admin")
            )
            for org in orgs
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409]
    final = await committing_client.get(f"{ADMIN}/{single['code']}", headers=operator)
    assert final.json()["redemptions"] == 1
