"""Tax: a rate per customer, set by the operator, billed on the subtotal as a line of its own."""

from datetime import timedelta
from decimal import Decimal

from tollgate_billing.invoices.service import tax_of

from .conftest import assert_problem
from .test_invoices import END, GRACE, REQUEST, START, close, ended_period, metered_plan


def test_tax_is_rounded_once_half_to_even():
    # 0.05 % of $10.00 is half a cent: to the even 0; 0.15 % is 1.5 cents: 2; 0.25 %: 2.
    assert tax_of(1000, rate=Decimal("0.05"), currency="USD") == 0
    assert tax_of(1000, rate=Decimal("0.15"), currency="USD") == 2
    assert tax_of(1000, rate=Decimal("0.25"), currency="USD") == 2
    assert tax_of(1002, rate=Decimal("8.875"), currency="USD") == 89  # 88.9275 cents
    assert tax_of(15, rate=Decimal(10), currency="JPY") == 2  # 1.5 yen, no minor digits
    assert tax_of(1000, rate=Decimal(100), currency="USD") == 1000
    assert tax_of(0, rate=Decimal(19), currency="USD") == 0
    assert tax_of(-500, rate=Decimal(19), currency="USD") == 0  # a credit bears no tax


async def test_the_tax_line_comes_after_the_lines_it_taxes(
    client, db, billing_app, metering, acme, operator
):
    await ended_period(db, acme, await metered_plan(db))
    await metering.store(
        acme.org_id,
        *[("api_requests", "k", START + timedelta(seconds=18 + n), REQUEST) for n in range(7)],
    )
    # A JSON number with more digits than a float would keep is taken exactly.
    response = await client.put(
        f"/v1/billing/admin/customers/{acme.org_id}/tax",
        content=b'{"rate": 8.875}',
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"organization_id": str(acme.org_id), "tax_rate": "8.875"}
    customer = await client.get("/v1/billing/customer", headers=acme.user())
    assert customer.json()["tax_rate"] == "8.875"

    [invoice_id] = await close(db, billing_app, END + GRACE)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    assert [(line["kind"], line["description"], line["amount"]) for line in invoice["lines"]] == [
        ("base_fee", "Metered (monthly)", 1000),
        ("metered", "api_requests: 7 (2 included)", 2),
        ("tax", "Tax 8.875 %", 89),  # 8.875 % of 1002 = 88.9275 cents
    ]
    assert (invoice["subtotal"], invoice["total"]) == (1002, 1091)

    # The running period shows it too; removing the rate removes the line.
    upcoming = (await client.get("/v1/billing/invoices/upcoming", headers=acme.user())).json()
    assert [line["kind"] for line in upcoming["lines"]] == ["base_fee", "metered", "tax"]
    assert upcoming["total"] == sum(line["amount"] for line in upcoming["lines"])
    removed = await client.put(
        f"/v1/billing/admin/customers/{acme.org_id}/tax", json={"rate": None}, headers=operator
    )
    assert removed.json()["tax_rate"] is None
    upcoming = (await client.get("/v1/billing/invoices/upcoming", headers=acme.user())).json()
    assert [line["kind"] for line in upcoming["lines"]] == ["base_fee", "metered"]
    assert upcoming["subtotal"] == upcoming["total"]


async def test_a_zero_rate_shows_a_zero_tax_line(client, db, billing_app, acme, operator):
    await ended_period(db, acme, "free")
    await client.put(
        f"/v1/billing/admin/customers/{acme.org_id}/tax", json={"rate": "0"}, headers=operator
    )
    [invoice_id] = await close(db, billing_app, END + GRACE)
    invoice = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())).json()
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [
        ("base_fee", 0),
        ("tax", 0),
    ]
    assert invoice["total"] == 0


async def test_bad_tax_requests_are_clear_4xx(client, db, acme, globex, operator):
    await ended_period(db, acme, "free")
    url = f"/v1/billing/admin/customers/{acme.org_id}/tax"
    for rate in ("-1", "100.01", "NaN", "Infinity", "abc", "1.0000001", True):
        assert_problem(await client.put(url, json={"rate": rate}, headers=operator), 422)
    assert_problem(await client.put(url, json={}, headers=operator), 422)
    assert_problem(await client.put(url, json={"rate": "5", "x": 1}, headers=operator), 422)
    assert_problem(
        await client.put(
            "/v1/billing/admin/customers/nope/tax", json={"rate": "5"}, headers=operator
        ),
        422,
    )
    # Only the platform operator: not the organisation's own admins, nor its admin keys.
    assert_problem(await client.put(url, json={"rate": "0"}, headers=acme.user("org_admin")), 403)
    assert_problem(await client.put(url, json={"rate": "0"}, headers=acme.key("admin")), 403)
    # An organisation billing does not know yet.
    assert_problem(
        await client.put(
            f"/v1/billing/admin/customers/{globex.org_id}/tax", json={"rate": "5"}, headers=operator
        ),
        404,
        "customer-not-found",
    )
