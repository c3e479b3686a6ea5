"""The payment endpoints in ledger mode (no payment provider): a sandbox test card on file,
paying an open invoice now, the operator's list of failed payments."""

import uuid
from datetime import UTC, datetime

import pytest

from tollgate_billing.invoices.service import InvoiceStateError, void_invoice
from tollgate_billing.payments.service import pay_now

from .conftest import assert_problem
from .payment_helpers import attempts, invoice_row, open_invoice, status_of

METHOD = "/v1/billing/payment-method"
NOW = datetime.now(UTC)
GOOD, DECLINED, NO_FUNDS = "4242424242424242", "4000000000000341", "4000000000009995"


def card(number: str, *, month: int = 12, year: int = NOW.year + 3) -> dict:
    return {"card_number": number, "exp_month": month, "exp_year": year}


def pay(invoice_id: uuid.UUID) -> str:
    return f"/v1/billing/invoices/{invoice_id}/pay"


@pytest.mark.parametrize(
    ("number", "outcome"),
    [(GOOD, None), (DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")],
)
async def test_each_test_card_has_its_fixed_outcome(client, db, acme, number, outcome):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    admin = acme.user("billing_admin")
    put = await client.put(METHOD, json=card(number), headers=admin)
    assert put.status_code == 200, put.text
    summary = put.json()
    assert {key: summary[key] for key in ("provider", "brand", "last4", "exp_month")} == {
        "provider": "ledger",
        "brand": "visa",
        "last4": number[-4:],
        "exp_month": 12,
    }
    assert (await client.get(METHOD, headers=acme.key("read"))).json() == summary

    response = await client.post(pay(invoice_id), headers=admin)
    async with db() as session:
        invoice = await invoice_row(session, invoice_id)
        recorded = await attempts(session, invoice_id)
        status = await status_of(session, acme.org_id)
    if outcome is None:
        assert response.status_code == 200, response.text
        assert (response.json()["state"], invoice.state) == ("paid", "paid")
        assert recorded == [(1, "ledger", None, "succeeded", None)]
        assert status == "active"
    else:
        problem = assert_problem(response, 402, "payment-failed")
        assert problem["reason"] == outcome
        assert outcome in problem["detail"]
        assert "PUT /v1/billing/payment-method" in problem["detail"]
        assert invoice.state == "open"
        assert recorded == [(1, "ledger", None, "failed", outcome)]
        assert status == "past_due"
        shown = (await client.get(f"/v1/billing/invoices/{invoice_id}", headers=admin)).json()
        assert shown["payment_attempts"] == 1
        assert shown["next_payment_attempt_at"] is not None  # the first dunning retry


async def test_without_a_method_the_attempt_fails_with_no_payment_method(client, db, acme):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    assert_problem(await client.get(METHOD, headers=acme.user()), 404, "payment-method-not-found")
    problem = assert_problem(
        await client.post(pay(invoice_id), headers=acme.user("org_admin")), 402, "payment-failed"
    )
    assert problem["reason"] == "no_payment_method"
    async with db() as session:
        assert await attempts(session, invoice_id) == [
            (1, "ledger", None, "failed", "no_payment_method")
        ]


async def test_an_open_invoice_of_nothing_is_paid_without_a_charge(client, db, acme):
    """Finalizing pays a $0 invoice at once; one left open from before payments existed is
    paid when paid for, with no attempt and no method needed."""
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW, total=0)
    response = await client.post(pay(invoice_id), headers=acme.user("org_admin"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "paid"
    async with db() as session:
        assert await attempts(session, invoice_id) == []
        assert await status_of(session, acme.org_id) == "active"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (card("4242 4242 4242 424x"), "card_number", "digits"),
        (card("4242424242424241"), "card_number", "check digit"),
        (card("5555555555554444"), "card_number", "sandbox"),  # a valid, real-looking card
        (card(GOOD, month=1, year=2021), "exp_year", "expired"),
        (card(GOOD, month=13), "exp_month", None),
        ({"card_number": GOOD, "exp_month": 12}, "exp_year", None),
        ({"card_number": 4242424242424242, "exp_month": 12, "exp_year": 2040}, "card_number", None),
    ],
)
async def test_a_bad_card_is_a_clear_422_and_changes_nothing(client, db, acme, body, field, words):
    await open_invoice(db, org_id=acme.org_id, now=NOW)
    admin = acme.user("org_admin")
    assert (await client.put(METHOD, json=card(GOOD), headers=admin)).status_code == 200
    before = (await client.get(METHOD, headers=admin)).json()
    problem = assert_problem(await client.put(METHOD, json=body, headers=admin), 422)
    [error] = problem["errors"]
    assert error["loc"][-1] == field
    if words:
        assert words in error["message"]
    submitted = str(body["card_number"])
    if submitted not in (GOOD, DECLINED, NO_FUNDS):  # the message names the test cards
        assert submitted not in str(problem)  # a card number is never echoed
    assert (await client.get(METHOD, headers=admin)).json() == before


async def test_the_method_is_replaced_and_removed_by_billing_admins_only(client, db, acme):
    await open_invoice(db, org_id=acme.org_id, now=NOW)
    admin = acme.user("billing_admin")
    assert_problem(await client.put(METHOD, json=card(GOOD), headers=acme.user()), 403)
    assert_problem(await client.put(METHOD, json=card(GOOD), headers=acme.key("read")), 403)
    assert (await client.put(METHOD, json=card(GOOD), headers=admin)).status_code == 200
    assert (await client.put(METHOD, json=card(DECLINED), headers=acme.key("admin"))).json()[
        "last4"
    ] == "0341"
    assert (await client.get(METHOD, headers=acme.user())).json()["last4"] == "0341"
    assert_problem(await client.delete(METHOD, headers=acme.user()), 403)
    deleted = await client.delete(METHOD, headers=admin)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_problem(await client.get(METHOD, headers=admin), 404, "payment-method-not-found")
    assert_problem(await client.delete(METHOD, headers=admin), 404, "payment-method-not-found")
    async with db() as session:
        from .payment_helpers import events

        recorded = [
            (type_, data.get("last4"))
            for type_, data in await events(session, acme.org_id)
            if "payment_method" in type_
        ]
    assert recorded == [
        ("tollgate.billing.payment_method.updated", "4242"),
        ("tollgate.billing.payment_method.updated", "0341"),
        ("tollgate.billing.payment_method.removed", "0341"),
    ]


async def test_a_method_needs_a_billing_customer(client, acme):
    response = await client.put(METHOD, json=card(GOOD), headers=acme.user("org_admin"))
    assert_problem(response, 404, "customer-not-found")


async def test_another_orgs_invoice_is_not_found_and_a_paid_one_is_a_conflict(
    client, db, acme, globex
):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    await open_invoice(db, org_id=globex.org_id, now=NOW)
    for org in (acme, globex):
        await client.put(METHOD, json=card(GOOD), headers=org.user("org_admin"))
    assert_problem(
        await client.post(pay(invoice_id), headers=globex.user("org_admin")),
        404,
        "invoice-not-found",
    )
    assert_problem(
        await client.post(pay(uuid.uuid4()), headers=acme.user("org_admin")),
        404,
        "invoice-not-found",
    )
    async with db() as session:
        assert await attempts(session, invoice_id) == []  # globex's try reached nothing
    assert_problem(await client.post(pay(invoice_id), headers=acme.user()), 403)
    assert (await client.post(pay(invoice_id), headers=acme.user("org_admin"))).status_code == 200
    assert_problem(
        await client.post(pay(invoice_id), headers=acme.user("org_admin")), 409, "invoice-state"
    )
    shown = await client.get(f"/v1/billing/invoices/{invoice_id}", headers=acme.user())
    assert shown.json()["state"] == "paid"


async def test_the_operator_lists_failed_payments_across_orgs_newest_first(
    client, db, acme, globex, operator
):
    ids = {}
    for org, number in ((acme, DECLINED), (globex, NO_FUNDS)):
        ids[org.org_id] = await open_invoice(db, org_id=org.org_id, now=NOW)
        await client.put(METHOD, json=card(number), headers=org.user("org_admin"))
        await client.post(pay(ids[org.org_id]), headers=org.user("org_admin"))
    await client.put(METHOD, json=card(GOOD), headers=acme.user("org_admin"))
    assert (await client.post(pay(ids[acme.org_id]), headers=acme.user("org_admin"))).is_success

    url = "/v1/billing/admin/payments"
    seen, cursor = [], None
    while True:
        params = {"outcome": "failed", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = await client.get(url, params=params, headers=operator)
        assert page.status_code == 200, page.text
        seen += [
            item for item in page.json()["items"] if item["invoice_id"] in map(str, ids.values())
        ]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [(item["organization_id"], item["failure_reason"]) for item in seen] == [
        (str(globex.org_id), "insufficient_funds"),
        (str(acme.org_id), "card_declined"),
    ]
    assert all(item["outcome"] == "failed" and item["amount"] == 1000 for item in seen)
    everything = await client.get(url, headers=operator)
    assert {"succeeded", "failed"} <= {item["outcome"] for item in everything.json()["items"]}
    assert_problem(await client.get(url, params={"outcome": "lost"}, headers=operator), 422)
    assert_problem(await client.get(url, headers=acme.user("org_admin")), 403)


class VoidedMeanwhile:
    """A provider that finds the invoice voided by an operator while the payment waited."""

    provider = "ledger"

    async def collect(self, sessionmaker, *, invoice_id, now) -> None:
        async with sessionmaker() as session, session.begin():
            await void_invoice(session, invoice_id=invoice_id, now=now)


async def test_paying_an_invoice_that_ended_meanwhile_is_a_conflict_not_a_success(db, acme):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    with pytest.raises(InvoiceStateError) as raised:
        await pay_now(
            db, org_id=acme.org_id, invoice_id=invoice_id, collector=VoidedMeanwhile(), now=NOW
        )
    assert raised.value.extensions == {"state": "void"}
