"""The operator's reports: MRR, revenue by month, invoices by state, customers and invoices
across organisations. Other tests' customers share the database, so figures are compared as
differences from a reading taken first."""

from datetime import timedelta

import sqlalchemy as sa

from tollgate_billing.subscriptions.models import Subscription

from .conftest import assert_problem
from .subscription_helpers import new_subscription
from .test_invoices import END, GRACE, close, ended_period, metered_plan


def usd_mrr(report: dict) -> int:
    return next((c["mrr"] for c in report["currencies"] if c["currency"] == "USD"), 0)


async def set_status(db, org_id, status: str, interval: str = "month") -> None:
    async with db() as session, session.begin():
        await session.execute(
            sa.update(Subscription)
            .where(Subscription.org_id == org_id)  # type: ignore[arg-type]
            .values(status=status, interval=interval)
        )


async def test_mrr_counts_active_and_past_due_fees_with_yearly_as_a_twelfth(
    client, db, operator, settings
):
    before = (await client.get("/v1/billing/admin/reports/mrr", headers=operator)).json()
    now = END
    active = await new_subscription(db, plan="pro", now=now)
    past_due = await new_subscription(db, plan="pro", now=now)
    await set_status(db, past_due, "past_due")
    yearly = await new_subscription(db, plan="pro", now=now)
    await set_status(db, yearly, "active", interval="year")
    trialing = await new_subscription(db, plan="pro", now=now)
    await set_status(db, trialing, "trialing")
    canceled = await new_subscription(db, plan="pro", now=now)
    await set_status(db, canceled, "canceled")
    await new_subscription(db, plan="free", now=now)

    response = await client.get("/v1/billing/admin/reports/mrr", headers=operator)
    assert response.status_code == 200, response.text
    after = response.json()
    pro = next(p for p in settings.catalog if p.key == "pro")
    assert (pro.monthly_price, pro.yearly_price) == (99, 990)
    yearly_cents = 8250  # $990 / 12
    assert usd_mrr(after) - usd_mrr(before) == 9900 * 2 + yearly_cents
    paying = {c["currency"]: c["paying_subscriptions"] for c in after["currencies"]}
    paying_before = {c["currency"]: c["paying_subscriptions"] for c in before["currencies"]}
    assert paying["USD"] - paying_before.get("USD", 0) == 3
    rows = {(p["plan"], p["interval"], p["status"]): p for p in after["by_plan"]}
    assert rows[("pro", "month", "trialing")]["mrr"] == 0
    assert rows[("pro", "year", "active")]["mrr"] >= yearly_cents
    assert after["counted_statuses"] == ["active", "past_due"]
    assert active and canceled


async def test_revenue_by_month_splits_invoiced_and_collected(
    client, db, billing_app, metering, acme, operator
):
    params = {"from": "2026-01", "to": "2026-12"}
    before = (
        await client.get("/v1/billing/admin/reports/revenue", params=params, headers=operator)
    ).json()["months"]
    await ended_period(db, acme, await metered_plan(db))
    [invoice_id] = await close(db, billing_app, END + GRACE)  # finalized in April 2026

    def figures(months, month):
        row = next((m for m in months if m["month"] == month and m["currency"] == "USD"), None)
        return (row or {}).get("invoiced", 0), (row or {}).get("collected", 0)

    response = await client.get(
        "/v1/billing/admin/reports/revenue", params=params, headers=operator
    )
    assert response.status_code == 200, response.text
    april, april_before = (
        figures(response.json()["months"], "2026-04-01"),
        figures(before, "2026-04-01"),
    )
    assert (april[0] - april_before[0], april[1] - april_before[1]) == (1000, 0)

    await client.post(f"/v1/billing/admin/invoices/{invoice_id}/pay", headers=operator)
    paid = await client.get(
        "/v1/billing/admin/reports/revenue",
        params={"from": "2026-01"},  # to this month, the payment's
        headers=operator,
    )
    assert paid.status_code == 200, paid.text
    collected = sum(m["collected"] for m in paid.json()["months"] if m["currency"] == "USD")
    collected_before = sum(m["collected"] for m in before if m["currency"] == "USD")
    assert collected - collected_before == 1000


async def test_revenue_months_are_checked(client, operator):
    for params, status in [
        ({"from": "2026-13"}, 400),
        ({"from": "26-01"}, 422),
        ({"from": "2026-05", "to": "2026-04"}, 400),
        ({"from": "2000-01", "to": "2026-01"}, 400),
        # Months at the edges of the calendar: a problem, not a 500 from date arithmetic.
        ({"from": "9999-12", "to": "9999-12"}, 400),
        ({"to": "0001-03"}, 400),
    ]:
        response = await client.get(
            "/v1/billing/admin/reports/revenue", params=params, headers=operator
        )
        assert_problem(response, status)


async def test_invoices_by_state_and_the_cross_org_invoice_list(
    client, db, billing_app, metering, acme, operator
):
    before = (await client.get("/v1/billing/admin/reports/invoices", headers=operator)).json()
    await ended_period(db, acme, await metered_plan(db))
    [invoice_id] = await close(db, billing_app, END + GRACE)

    def open_usd(report):
        row = next(
            (s for s in report["states"] if (s["state"], s["currency"]) == ("open", "USD")), {}
        )
        return row.get("invoices", 0), row.get("total", 0)

    after = (await client.get("/v1/billing/admin/reports/invoices", headers=operator)).json()
    assert (
        open_usd(after)[0] - open_usd(before)[0],
        open_usd(after)[1] - open_usd(before)[1],
    ) == (1, 1000)

    listed = await client.get(
        "/v1/billing/admin/invoices", params={"state": "open"}, headers=operator
    )
    assert listed.status_code == 200, listed.text
    mine = [i for i in listed.json()["items"] if i["id"] == str(invoice_id)]
    assert mine and mine[0]["organization_id"] == str(acme.org_id)
    assert mine[0]["total"] == 1000
    paid = await client.get(
        "/v1/billing/admin/invoices", params={"state": "paid"}, headers=operator
    )
    assert str(invoice_id) not in [i["id"] for i in paid.json()["items"]]
    assert_problem(
        await client.get("/v1/billing/admin/invoices", params={"state": "draft"}, headers=operator),
        422,
    )


async def test_customers_list_filters_and_pages(client, db, operator):
    orgs = [
        await new_subscription(db, plan="pro", now=END + timedelta(seconds=n)) for n in range(3)
    ]
    await set_status(db, orgs[1], "past_due")
    response = await client.get(
        "/v1/billing/admin/customers", params={"status": "past_due"}, headers=operator
    )
    assert response.status_code == 200, response.text
    assert str(orgs[1]) in [c["organization_id"] for c in response.json()["items"]]
    assert all(c["status"] == "past_due" for c in response.json()["items"])

    seen: list[str] = []
    params = {"plan": "pro", "limit": 1}
    while True:
        page = (
            await client.get("/v1/billing/admin/customers", params=params, headers=operator)
        ).json()
        seen += [c["organization_id"] for c in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert {str(org) for org in orgs} <= set(seen)
    assert len(seen) == len(set(seen))
    assert_problem(
        await client.get(
            "/v1/billing/admin/customers", params={"status": "sleeping"}, headers=operator
        ),
        422,
    )


async def test_reports_are_for_the_platform_operator_only(client, acme):
    for path in (
        "/v1/billing/admin/reports/mrr",
        "/v1/billing/admin/reports/revenue",
        "/v1/billing/admin/reports/invoices",
        "/v1/billing/admin/invoices",
        "/v1/billing/admin/customers",
    ):
        assert_problem(await client.get(path, headers=acme.user("org_admin")), 403)
        assert_problem(await client.get(path, headers=acme.key("admin")), 403)
