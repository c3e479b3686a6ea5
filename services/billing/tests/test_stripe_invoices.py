"""Invoices pushed to Stripe and collected there (localstripe behind the test front), the
payment method from a Checkout Session, and Stripe being off."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import stripe

from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.payments.methods import current_payment_method
from tollgate_billing.stripe_api.client import metadata_of
from tollgate_billing.stripe_api.collector import StripeCollector
from tollgate_billing.stripe_api.customers import ensure_stripe_customer
from tollgate_billing.stripe_api.invoices import (
    InvoicePushBlockedError,
    load_issued,
    push_invoice,
)
from tollgate_billing.stripe_api.repository import StripeRepository
from tollgate_shared.embedded import free_port

from .conftest import (
    STRIPE_TEST_LINES,
    assert_problem,
    deliver,
    open_invoice_with_lines,
    stripe_event,
)
from .payment_helpers import attempts, events, invoice_row, status_of
from .subscription_helpers import new_subscription

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # accepted as a method, every charge declined


async def stripe_invoice_id(app, invoice_id: uuid.UUID) -> str:
    async with app.state.sessionmaker() as session:
        pushed = await StripeRepository(session).stripe_invoice_of(invoice_id)
    assert pushed is not None
    return pushed


async def add_card_through_checkout(http, localstripe, org, card: str) -> str:
    """The organisation's admin starts a Checkout Session, the customer enters the card on
    Stripe's page, Stripe's checkout.session.completed reaches billing; the session id."""
    started = await http.post(
        "/v1/billing/payment-method/checkout", headers=org.user("billing_admin")
    )
    assert started.status_code == 201, started.text
    session = started.json()
    assert session["url"].startswith("https://")
    await localstripe.complete_checkout(session["id"], card)
    event = await stripe_event(localstripe, "checkout.session.completed", session["id"])
    delivered = await deliver(http, localstripe, event)
    assert delivered.json()["outcome"] == "applied", delivered.text
    return str(session["id"])


async def test_a_pushed_invoice_has_our_lines_and_pushing_again_makes_nothing(
    stripe_app, localstripe
):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    invoice_id = await open_invoice_with_lines(sessions, org_id=org_id, now=NOW)
    loaded = await load_issued(sessions, invoice_id)
    assert loaded is not None
    invoice, lines = loaded

    pushed = await push_invoice(sessions, client, invoice=invoice, lines=lines)
    requests_after_first = await localstripe.requests()
    again = await push_invoice(sessions, client, invoice=invoice, lines=lines)

    assert again.id == pushed.id == await stripe_invoice_id(stripe_app, invoice_id)
    stored = await localstripe.client().v1.invoices.retrieve_async(pushed.id)
    assert stored.status == "open"
    assert metadata_of(stored)["tollgate_invoice_id"] == str(invoice_id)
    stripe_lines = sorted(stored.lines.data, key=lambda line: int(metadata_of(line)["position"]))
    assert [(line.amount, line.description) for line in stripe_lines] == [
        (amount, description) for _, description, amount in STRIPE_TEST_LINES
    ]
    assert {line.currency for line in stripe_lines} == {"usd"}
    assert stored.subtotal == invoice.total
    # One item per line, each under a key made of the line's id; the second push only read.
    posts = [r for r in requests_after_first if r["method"] == "POST"]
    item_keys = [r["idempotency_key"] for r in posts if r["path"] == "/v1/invoiceitems"]
    assert set(item_keys) >= {f"tollgate-invoice-line-{line.id}" for line in lines}
    assert f"tollgate-invoice-{invoice_id}" in [
        r["idempotency_key"] for r in posts if r["path"] == "/v1/invoices"
    ]
    later = (await localstripe.requests())[len(requests_after_first) :]
    assert [r for r in later if r["method"] == "POST"] == []


async def test_the_card_from_checkout_pays_the_invoice_and_the_webhook_changes_nothing_more(
    stripe_app, stripe_client, localstripe, acme
):
    sessions = stripe_app.state.sessionmaker
    await new_subscription(sessions, org_id=acme.org_id, now=NOW)
    invoice_id = await open_invoice_with_lines(sessions, org_id=acme.org_id, now=NOW)

    await add_card_through_checkout(stripe_client, localstripe, acme, GOOD_CARD)
    await stripe_app.state.payment_collector.collect(sessions, invoice_id=invoice_id, now=NOW)

    async with sessions() as session:
        invoice = await invoice_row(session, invoice_id)
        method = await current_payment_method(session, customer_id=invoice.customer_id)
        stripe_customer = await StripeRepository(session).stripe_customer_of(invoice.customer_id)
    assert method is not None
    assert (method.provider, method.brand, method.last4) == ("stripe", "visa", "4242")
    assert method.reference is not None and method.reference.startswith("pm_")
    customer = await localstripe.client().v1.customers.retrieve_async(stripe_customer or "")
    assert customer.invoice_settings.default_payment_method == method.reference
    pushed = await stripe_invoice_id(stripe_app, invoice_id)
    assert invoice.state == "paid"
    assert (await localstripe.client().v1.invoices.retrieve_async(pushed)).status == "paid"

    # Stripe reports the same payment by webhook: one attempt, one invoice.paid.
    succeeded = await stripe_event(localstripe, "invoice.payment_succeeded", pushed)
    assert (await deliver(stripe_client, localstripe, succeeded)).status_code == 200
    async with sessions() as session:
        assert await attempts(session, invoice_id) == [(1, "stripe", pushed, "succeeded", None)]
        recorded = await events(session, acme.org_id)
    paid = [kind for kind, _ in recorded if kind == "tollgate.billing.invoice.paid"]
    assert len(paid) == 1


async def test_a_declined_card_is_one_failed_attempt_from_the_answer_and_the_webhook(
    stripe_app, stripe_client, localstripe, acme
):
    sessions = stripe_app.state.sessionmaker
    await new_subscription(sessions, org_id=acme.org_id, now=NOW)
    invoice_id = await open_invoice_with_lines(sessions, org_id=acme.org_id, now=NOW)
    await add_card_through_checkout(stripe_client, localstripe, acme, DECLINED_CARD)

    await stripe_app.state.payment_collector.collect(sessions, invoice_id=invoice_id, now=NOW)
    pushed = await stripe_invoice_id(stripe_app, invoice_id)
    failed = await stripe_event(localstripe, "invoice.payment_failed", pushed)
    assert (await deliver(stripe_client, localstripe, failed)).status_code == 200

    async with sessions() as session:
        invoice = await invoice_row(session, invoice_id)
        assert invoice.state == "open"
        assert await attempts(session, invoice_id) == [
            (1, "stripe", f"{pushed}/attempt/1", "failed", "card_declined")
        ]
        assert await status_of(session, acme.org_id) == "past_due"


async def test_without_a_payment_method_the_invoice_is_pushed_and_the_attempt_fails(
    stripe_app, localstripe
):
    sessions = stripe_app.state.sessionmaker
    org_id = await new_subscription(sessions, now=NOW)
    invoice_id = await open_invoice_with_lines(sessions, org_id=org_id, now=NOW)

    await stripe_app.state.payment_collector.collect(sessions, invoice_id=invoice_id, now=NOW)

    pushed = await stripe_invoice_id(stripe_app, invoice_id)
    assert (await localstripe.client().v1.invoices.retrieve_async(pushed)).status == "open"
    async with sessions() as session:
        assert await attempts(session, invoice_id) == [
            (1, "stripe", None, "failed", "no_payment_method")
        ]


async def test_a_push_cut_short_is_finished_by_its_retry_and_blocks_no_other_invoice_wrongly(
    stripe_app, localstripe
):
    """Items of an invoice whose push stopped before the Stripe invoice existed stay pending
    in Stripe: another invoice of the customer waits (Stripe would put them on it), and the
    first one's retry takes exactly its own items."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    first_id = await open_invoice_with_lines(sessions, org_id=org_id, now=NOW)
    second_id = await open_invoice_with_lines(
        sessions, org_id=org_id, now=NOW, period_start=datetime(2020, 2, 1, tzinfo=UTC)
    )
    first = await load_issued(sessions, first_id)
    second = await load_issued(sessions, second_id)
    assert first is not None and second is not None
    # The first push stopped after its first item.
    stripe_customer = await ensure_stripe_customer(
        sessions, client, customer_id=first[0].customer_id
    )
    line = first[1][0]
    await client.v1.invoice_items.create_async(
        {
            "customer": stripe_customer,
            "amount": line.amount,
            "currency": "usd",
            "description": line.description,
            "metadata": {
                "tollgate_invoice_id": str(first_id),
                "tollgate_invoice_line_id": str(line.id),
                "position": str(line.position),
            },
        },
        {"idempotency_key": f"tollgate-invoice-line-{line.id}"},
    )

    with pytest.raises(InvoicePushBlockedError):
        await push_invoice(sessions, client, invoice=second[0], lines=second[1])
    pushed = await push_invoice(sessions, client, invoice=first[0], lines=first[1])
    later = await push_invoice(sessions, client, invoice=second[0], lines=second[1])

    assert pushed.subtotal == first[0].total
    assert later.subtotal == second[0].total
    assert len(pushed.lines.data) == len(later.lines.data) == len(STRIPE_TEST_LINES)


async def test_with_stripe_off_checkout_and_webhooks_are_conflicts(client, acme):
    checkout = await client.post(
        "/v1/billing/payment-method/checkout", headers=acme.user("billing_admin")
    )
    body = assert_problem(checkout, 409, "stripe-disabled")
    assert "PUT /v1/billing/payment-method" in body["detail"]
    webhook = await client.post(
        "/v1/billing/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert_problem(webhook, 409, "stripe-disabled")


async def test_checkout_needs_a_billing_admin_and_a_customer(stripe_client, acme):
    member = await stripe_client.post(
        "/v1/billing/payment-method/checkout", headers=acme.user("member")
    )
    assert_problem(member, 403)
    unknown = await stripe_client.post(
        "/v1/billing/payment-method/checkout", headers=acme.user("org_admin")
    )
    assert_problem(unknown, 404, "customer-not-found")


async def test_the_customer_pays_now_through_stripe_or_hears_the_decline(
    stripe_app, stripe_client, localstripe, acme
):
    sessions = stripe_app.state.sessionmaker
    await new_subscription(sessions, org_id=acme.org_id, now=NOW)
    first = await open_invoice_with_lines(sessions, org_id=acme.org_id, now=NOW)
    await add_card_through_checkout(stripe_client, localstripe, acme, DECLINED_CARD)

    declined = await stripe_client.post(
        f"/v1/billing/invoices/{first}/pay", headers=acme.user("billing_admin")
    )
    assert_problem(declined, 402)
    assert declined.json()["reason"] == "card_declined"
    # With Stripe on, a new card is added on Stripe's page.
    assert "POST /v1/billing/payment-method/checkout" in declined.json()["detail"]

    await add_card_through_checkout(stripe_client, localstripe, acme, GOOD_CARD)
    paid = await stripe_client.post(
        f"/v1/billing/invoices/{first}/pay", headers=acme.user("billing_admin")
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["state"] == "paid"
    pushed = await stripe_invoice_id(stripe_app, first)
    async with sessions() as session:
        assert [attempt[2:] for attempt in await attempts(session, first)] == [
            (f"{pushed}/attempt/1", "failed", "card_declined"),
            (pushed, "succeeded", None),
        ]
        assert await status_of(session, acme.org_id) == "active"


async def test_stripe_unreachable_is_503_and_records_nothing(
    stripe_app, stripe_client, localstripe, acme
):
    sessions = stripe_app.state.sessionmaker
    await new_subscription(sessions, org_id=acme.org_id, now=NOW)
    invoice_id = await open_invoice_with_lines(sessions, org_id=acme.org_id, now=NOW)
    await add_card_through_checkout(stripe_client, localstripe, acme, GOOD_CARD)
    configured = stripe_app.state.payment_collector
    stripe_app.state.payment_collector = StripeCollector(
        stripe.StripeClient(
            localstripe.secret_key,
            base_addresses={"api": f"http://127.0.0.1:{free_port()}"},  # nothing listens
            http_client=stripe.HTTPXClient(timeout=2),
        )
    )
    try:
        response = await stripe_client.post(
            f"/v1/billing/invoices/{invoice_id}/pay", headers=acme.user("billing_admin")
        )
    finally:
        stripe_app.state.payment_collector = configured

    assert_problem(response, 503, "stripe-unavailable")
    async with sessions() as session:
        assert (await invoice_row(session, invoice_id)).state == "open"
        assert await attempts(session, invoice_id) == []


async def test_two_pushes_of_one_customer_at_once_each_take_only_their_own_items(
    stripe_app, localstripe
):
    """The collection job and the customer's POST .../pay push two invoices of one customer at
    the same moment: without one push at a time per customer, Stripe would put both invoices'
    pending items on whichever invoice it makes first, and both would fail the total check."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    first_id = await open_invoice_with_lines(sessions, org_id=org_id, now=NOW)
    second_id = await open_invoice_with_lines(
        sessions, org_id=org_id, now=NOW, period_start=datetime(2020, 2, 1, tzinfo=UTC)
    )
    first = await load_issued(sessions, first_id)
    second = await load_issued(sessions, second_id)
    assert first is not None and second is not None
    await ensure_stripe_customer(sessions, client, customer_id=first[0].customer_id)

    pushed = await asyncio.gather(
        push_invoice(sessions, client, invoice=first[0], lines=first[1]),
        push_invoice(sessions, client, invoice=second[0], lines=second[1]),
    )

    for stripe_invoice, (invoice, _) in zip(pushed, (first, second), strict=True):
        assert stripe_invoice.subtotal == invoice.total
        stored = await localstripe.client().v1.invoices.retrieve_async(stripe_invoice.id)
        owners = {metadata_of(line)["tollgate_invoice_id"] for line in stored.lines.data}
        assert owners == {str(invoice.id)}
        assert len(stored.lines.data) == len(STRIPE_TEST_LINES)


async def completed_checkouts(http, localstripe, org, cards: list[str]) -> list[dict]:
    """Checkout Sessions started one after another, completed in the order of cards, a second
    apart (Stripe's created times are in seconds); the checkout.session.completed of each."""
    started = []
    for _ in cards:
        response = await http.post(
            "/v1/billing/payment-method/checkout", headers=org.user("billing_admin")
        )
        assert response.status_code == 201, response.text
        started.append(response.json()["id"])
    events = []
    for position, (session_id, card) in enumerate(zip(started, cards, strict=True)):
        if position:
            await asyncio.sleep(1.1)
        await localstripe.complete_checkout(session_id, card)
        events.append(await stripe_event(localstripe, "checkout.session.completed", session_id))
    return events


async def method_on_file(http, org) -> tuple[str, str]:
    response = await http.get("/v1/billing/payment-method", headers=org.user("billing_admin"))
    assert response.status_code == 200, response.text
    return response.json()["provider"], response.json()["last4"]


async def stripe_default_method(stripe_app, localstripe, org_id: uuid.UUID) -> str:
    """The Stripe customer's default payment method for invoices, as Stripe has it."""
    async with stripe_app.state.sessionmaker() as session:
        customer = await CustomerRepository(session).of_org(org_id)
        assert customer is not None
        stripe_customer = await StripeRepository(session).stripe_customer_of(customer.id)
    assert stripe_customer is not None
    stored = await localstripe.client().v1.customers.retrieve_async(stripe_customer)
    assert stored.invoice_settings is not None
    return str(stored.invoice_settings.default_payment_method)


async def method_of_session(localstripe, event: dict) -> str:
    """The card the customer gave in the event's Checkout Session, as Stripe has it."""
    stripe_view = localstripe.client()
    session = await stripe_view.v1.checkout.sessions.retrieve_async(event["data"]["object"]["id"])
    assert isinstance(session.setup_intent, str)
    intent = await stripe_view.v1.setup_intents.retrieve_async(session.setup_intent)
    return str(intent.payment_method)


async def test_the_checkout_completed_last_stays_on_file_when_its_webhook_arrives_first(
    stripe_app, stripe_client, localstripe, acme
):
    sessions = stripe_app.state.sessionmaker
    await new_subscription(sessions, org_id=acme.org_id, now=NOW)
    # The customer adds a card, then another one: "5556" is the card they gave last.
    older, newer = await completed_checkouts(
        stripe_client, localstripe, acme, [GOOD_CARD, "4000056655665556"]
    )

    # Stripe delivers them the other way round.
    first = await deliver(stripe_client, localstripe, newer)
    second = await deliver(stripe_client, localstripe, older)

    assert first.json()["outcome"] == "applied", first.text
    assert second.json()["outcome"] == "superseded", second.text
    assert await method_on_file(stripe_client, acme) == ("stripe", "5556")
    newer_method = await method_of_session(localstripe, newer)
    assert await stripe_default_method(stripe_app, localstripe, acme.org_id) == newer_method
    # The older session never touched Stripe's default.
    older_key = f"tollgate-default-payment-method-{older['data']['object']['id']}"
    assert [r for r in await localstripe.requests() if r["idempotency_key"] == older_key] == []
    async with sessions() as session:
        outcomes = await session.execute(
            sa.text(
                "SELECT event_id, outcome FROM billing.stripe_events WHERE event_id IN (:a, :b)"
            ),
            {"a": older["id"], "b": newer["id"]},
        )
        assert dict(outcomes.all()) == {older["id"]: "superseded", newer["id"]: "applied"}
    # A redelivery of the older one is a duplicate and changes nothing either.
    again = await deliver(stripe_client, localstripe, older)
    assert again.json()["outcome"] == "duplicate"
    assert await method_on_file(stripe_client, acme) == ("stripe", "5556")


async def test_checkouts_delivered_in_order_or_at_once_leave_the_newest_card(
    stripe_app, stripe_client, localstripe, acme, globex
):
    sessions = stripe_app.state.sessionmaker
    for org in (acme, globex):
        await new_subscription(sessions, org_id=org.org_id, now=NOW)
    # In order: the later card replaces the earlier one (a customer changing cards).
    older, newer = await completed_checkouts(
        stripe_client, localstripe, acme, [GOOD_CARD, "4000056655665556"]
    )
    assert (await deliver(stripe_client, localstripe, older)).json()["outcome"] == "applied"
    assert await method_on_file(stripe_client, acme) == ("stripe", "4242")
    assert (await deliver(stripe_client, localstripe, newer)).json()["outcome"] == "applied"
    assert await method_on_file(stripe_client, acme) == ("stripe", "5556")

    # At once (two replicas): the newer card ends on file here and as Stripe's default.
    older, newer = await completed_checkouts(
        stripe_client, localstripe, globex, [GOOD_CARD, "4000056655665556"]
    )
    answers = await asyncio.gather(
        deliver(stripe_client, localstripe, newer), deliver(stripe_client, localstripe, older)
    )
    assert sorted(answer.json()["outcome"] for answer in answers) in (
        ["applied", "applied"],  # the older applied first, then replaced
        ["applied", "superseded"],
    )
    assert await method_on_file(stripe_client, globex) == ("stripe", "5556")
    newer_method = await method_of_session(localstripe, newer)
    assert await stripe_default_method(stripe_app, localstripe, globex.org_id) == newer_method
