"""POST /v1/billing/webhooks/stripe: the signature on the raw body, each event applied once, in
any order, with the events localstripe (behind the test front) really emitted."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from structlog.testing import capture_logs

from tollgate_billing.stripe_api.catalog import sync_catalog
from tollgate_billing.stripe_api.customers import ensure_stripe_customer
from tollgate_billing.stripe_api.invoices import load_issued, push_invoice
from tollgate_billing.subscriptions.repository import SubscriptionRepository

from .conftest import WEBHOOK_PATH, assert_problem, deliver, open_invoice_with_lines, stripe_event
from .payment_helpers import attempts, events, invoice_row
from .subscription_helpers import new_subscription

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
PAID = "tollgate.billing.invoice.paid"


async def pushed_invoice(stripe_app, org_id: uuid.UUID) -> tuple[uuid.UUID, str, str]:
    """An open invoice of ours pushed to Stripe: (invoice id, Stripe invoice, Stripe customer)."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    invoice_id = await open_invoice_with_lines(sessions, org_id=org_id, now=NOW)
    loaded = await load_issued(sessions, invoice_id)
    assert loaded is not None
    pushed = await push_invoice(sessions, client, invoice=loaded[0], lines=loaded[1])
    customer = await ensure_stripe_customer(sessions, client, customer_id=loaded[0].customer_id)
    return invoice_id, pushed.id, customer


async def pay_in_stripe(localstripe, customer: str, stripe_invoice: str, card: str) -> None:
    """Stripe collects the invoice itself (a retry of its own, the dashboard's "charge")."""
    stripe_view = localstripe.client()
    method = await stripe_view.v1.payment_methods.create_async(
        {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
    )
    await stripe_view.v1.payment_methods.attach_async(method.id, {"customer": customer})
    await stripe_view.v1.customers.update_async(
        customer, {"invoice_settings": {"default_payment_method": method.id}}
    )
    try:
        await stripe_view.v1.invoices.pay_async(stripe_invoice)
    except Exception as error:  # a declined card: the test looks at the events
        assert getattr(error, "http_status", None) == 402, error


async def stored_events(stripe_app, event_id: str) -> list[tuple[str, str]]:
    async with stripe_app.state.sessionmaker() as session:
        rows = await session.execute(
            sa.text("SELECT type, outcome FROM billing.stripe_events WHERE event_id = :id"),
            {"id": event_id},
        )
        return [(row[0], row[1]) for row in rows]


async def test_ten_copies_at_once_have_one_effect(stripe_app, stripe_client, localstripe):
    org_id = await new_subscription(stripe_app.state.sessionmaker, now=NOW)
    invoice_id, stripe_invoice, customer = await pushed_invoice(stripe_app, org_id)
    await pay_in_stripe(localstripe, customer, stripe_invoice, GOOD_CARD)
    event = await stripe_event(localstripe, "invoice.payment_succeeded", stripe_invoice)

    responses = await asyncio.gather(
        *(deliver(stripe_client, localstripe, event) for _ in range(10))
    )

    assert [response.status_code for response in responses] == [200] * 10
    outcomes = sorted(response.json()["outcome"] for response in responses)
    assert outcomes == ["applied"] + ["duplicate"] * 9
    async with stripe_app.state.sessionmaker() as session:
        assert (await invoice_row(session, invoice_id)).state == "paid"
        assert await attempts(session, invoice_id) == [
            (1, "stripe", stripe_invoice, "succeeded", None)
        ]
        paid = [kind for kind, _ in await events(session, org_id) if kind == PAID]
    assert len(paid) == 1
    assert await stored_events(stripe_app, event["id"]) == [
        ("invoice.payment_succeeded", "applied")
    ]


async def test_a_failure_delivered_after_the_success_leaves_the_invoice_paid(
    stripe_app, stripe_client, localstripe
):
    org_id = await new_subscription(stripe_app.state.sessionmaker, now=NOW)
    invoice_id, stripe_invoice, customer = await pushed_invoice(stripe_app, org_id)
    # In Stripe: a declined attempt, then a card that pays.
    await pay_in_stripe(localstripe, customer, stripe_invoice, DECLINED_CARD)
    await pay_in_stripe(localstripe, customer, stripe_invoice, GOOD_CARD)
    failed = await stripe_event(localstripe, "invoice.payment_failed", stripe_invoice)
    succeeded = await stripe_event(localstripe, "invoice.payment_succeeded", stripe_invoice)

    # Delivered in the reverse order.
    assert (await deliver(stripe_client, localstripe, succeeded)).status_code == 200
    assert (await deliver(stripe_client, localstripe, failed)).status_code == 200

    async with stripe_app.state.sessionmaker() as session:
        invoice = await invoice_row(session, invoice_id)
        recorded = await attempts(session, invoice_id)
    assert invoice.state == "paid"
    # Stripe, asked again, says paid: the late failure is not an attempt that failed now.
    assert [attempt[3] for attempt in recorded] == ["succeeded"]


async def test_a_failure_still_unpaid_in_stripe_is_recorded_with_its_decline_code(
    stripe_app, stripe_client, localstripe
):
    org_id = await new_subscription(stripe_app.state.sessionmaker, now=NOW)
    invoice_id, stripe_invoice, customer = await pushed_invoice(stripe_app, org_id)
    await pay_in_stripe(localstripe, customer, stripe_invoice, DECLINED_CARD)
    failed = await stripe_event(localstripe, "invoice.payment_failed", stripe_invoice)

    response = await deliver(stripe_client, localstripe, failed)

    assert response.json()["outcome"] == "applied"
    async with stripe_app.state.sessionmaker() as session:
        assert (await invoice_row(session, invoice_id)).state == "open"
        assert await attempts(session, invoice_id) == [
            (1, "stripe", f"{stripe_invoice}/attempt/1", "failed", "card_declined")
        ]


async def test_a_bad_signature_is_400_and_changes_nothing(stripe_app, stripe_client, localstripe):
    org_id = await new_subscription(stripe_app.state.sessionmaker, now=NOW)
    invoice_id, stripe_invoice, customer = await pushed_invoice(stripe_app, org_id)
    await pay_in_stripe(localstripe, customer, stripe_invoice, GOOD_CARD)
    event = await stripe_event(localstripe, "invoice.payment_succeeded", stripe_invoice)
    payload = json.dumps(event).encode()
    tampered = payload.replace(b'"paid"', b'"open"', 1)
    assert tampered != payload

    refused = [
        # The body changed after signing.
        await stripe_client.post(
            WEBHOOK_PATH, content=tampered, headers=localstripe.signature(payload)
        ),
        # Signed with another secret.
        await deliver(stripe_client, localstripe, event, secret="whsec_" + uuid.uuid4().hex),
        # Signed 301 seconds ago: past the 300-second tolerance, a replay.
        await deliver(stripe_client, localstripe, event, timestamp=int(time.time()) - 301),
        # No signature at all.
        await stripe_client.post(WEBHOOK_PATH, content=payload),
        # Not a signature.
        await stripe_client.post(
            WEBHOOK_PATH, content=payload, headers={"Stripe-Signature": "nonsense"}
        ),
    ]

    for response in refused:
        assert_problem(response, 400, "stripe-signature-invalid")
    assert await stored_events(stripe_app, event["id"]) == []
    async with stripe_app.state.sessionmaker() as session:
        assert (await invoice_row(session, invoice_id)).state == "open"
        assert await attempts(session, invoice_id) == []
    # The genuine delivery still works afterwards.
    assert (await deliver(stripe_client, localstripe, event)).json()["outcome"] == "applied"


async def test_a_signed_body_that_is_no_event_is_400(stripe_client, localstripe):
    payload = b'{"hello": "world"}'
    response = await stripe_client.post(
        WEBHOOK_PATH, content=payload, headers=localstripe.signature(payload)
    )
    assert_problem(response, 400, "stripe-event-invalid")


async def test_an_unknown_type_is_recorded_and_ignored_once(stripe_app, stripe_client, localstripe):
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "radar.early_fraud_warning.created",
        "data": {"object": {"id": "issfr_1", "object": "radar.early_fraud_warning"}},
    }

    first = await deliver(stripe_client, localstripe, event)
    second = await deliver(stripe_client, localstripe, event)

    assert first.status_code == second.status_code == 200
    assert (first.json()["outcome"], second.json()["outcome"]) == ("ignored", "duplicate")
    assert await stored_events(stripe_app, event["id"]) == [
        ("radar.early_fraud_warning.created", "ignored")
    ]


async def test_an_invoice_we_did_not_push_is_ignored(stripe_app, stripe_client, localstripe):
    """An invoice the operator made in Stripe themselves: nothing of ours to pay."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    async with sessions() as session:
        subscription = await SubscriptionRepository(session).of_org(org_id)
    assert subscription is not None
    customer = await ensure_stripe_customer(sessions, client, customer_id=subscription.customer_id)
    stripe_view = localstripe.client()
    await stripe_view.v1.invoice_items.create_async(
        {"customer": customer, "amount": 500, "currency": "usd"}
    )
    theirs = await stripe_view.v1.invoices.create_async(
        {"customer": customer, "pending_invoice_items_behavior": "include"}
    )
    await pay_in_stripe(localstripe, customer, theirs.id, GOOD_CARD)
    event = await stripe_event(localstripe, "invoice.payment_succeeded", theirs.id)

    response = await deliver(stripe_client, localstripe, event)

    assert response.json()["outcome"] == "ignored"


async def operator_subscription(
    stripe_app, localstripe, *, customer_org: uuid.UUID, tagged_org: uuid.UUID
) -> str:
    """A Stripe subscription the operator made for customer_org's Stripe customer, with
    metadata tollgate_org_id = tagged_org."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    await sync_catalog(sessions, client)
    async with sessions() as session:
        subscription = await SubscriptionRepository(session).of_org(customer_org)
    assert subscription is not None
    customer = await ensure_stripe_customer(sessions, client, customer_id=subscription.customer_id)
    created = await localstripe.client().v1.subscriptions.create_async(
        {
            "customer": customer,
            "items": [{"plan": "tollgate-free-month-0usd"}],
            "metadata": {"tollgate_org_id": str(tagged_org)},
        }
    )
    return created.id


async def cancel_pending(stripe_app, org_id: uuid.UUID) -> bool:
    async with stripe_app.state.sessionmaker() as session:
        subscription = await SubscriptionRepository(session).of_org(org_id)
        assert subscription is not None
        await session.refresh(subscription)
        return subscription.cancel_at_period_end


async def test_a_tagged_stripe_subscription_deleted_cancels_ours_at_period_end(
    stripe_app, stripe_client, localstripe
):
    org_id = await new_subscription(stripe_app.state.sessionmaker, plan="pro", now=NOW)
    subscription = await operator_subscription(
        stripe_app, localstripe, customer_org=org_id, tagged_org=org_id
    )
    # Still running in Stripe: an update changes nothing here.
    created = await stripe_event(localstripe, "customer.subscription.created", subscription)
    updated = {**created, "id": f"evt_{uuid.uuid4().hex}", "type": "customer.subscription.updated"}
    assert (await deliver(stripe_client, localstripe, updated)).json()["outcome"] == "ignored"
    assert await cancel_pending(stripe_app, org_id) is False

    await localstripe.client().v1.subscriptions.cancel_async(subscription)
    deleted = await stripe_event(localstripe, "customer.subscription.deleted", subscription)
    response = await deliver(stripe_client, localstripe, deleted)

    assert response.json()["outcome"] == "applied"
    assert await cancel_pending(stripe_app, org_id) is True
    # The "updated" snapshot of before, delivered late: Stripe says it ended, still canceled.
    late = {**updated, "id": f"evt_{uuid.uuid4().hex}"}
    assert (await deliver(stripe_client, localstripe, late)).status_code == 200
    assert await cancel_pending(stripe_app, org_id) is True


async def test_a_subscription_tagged_with_another_org_cancels_nothing(
    stripe_app, stripe_client, localstripe
):
    sessions = stripe_app.state.sessionmaker
    acme = await new_subscription(sessions, plan="pro", now=NOW)
    globex = await new_subscription(sessions, plan="pro", now=NOW)
    subscription = await operator_subscription(
        stripe_app, localstripe, customer_org=acme, tagged_org=globex
    )
    await localstripe.client().v1.subscriptions.cancel_async(subscription)
    deleted = await stripe_event(localstripe, "customer.subscription.deleted", subscription)

    response = await deliver(stripe_client, localstripe, deleted)

    assert response.json()["outcome"] == "ignored"
    assert await cancel_pending(stripe_app, acme) is False
    assert await cancel_pending(stripe_app, globex) is False


async def test_an_event_whose_object_was_deleted_in_stripe_is_ignored_not_retried(
    stripe_app, stripe_client, localstripe
):
    """Re-reading the object answers 404 resource_missing: nothing can ever be applied, so the
    event is stored as ignored with 200 (a 503 would make Stripe redeliver it for days)."""
    gone = f"in_{uuid.uuid4().hex[:14]}"
    event = {
        "id": f"evt_{uuid.uuid4().hex[:14]}",
        "object": "event",
        "type": "invoice.payment_succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": gone, "object": "invoice", "status": "paid"}},
    }

    with capture_logs() as logged:
        first = await deliver(stripe_client, localstripe, event)
    again = await deliver(stripe_client, localstripe, event)

    assert first.status_code == 200, first.text
    assert [
        (entry["log_level"], entry["object_id"])
        for entry in logged
        if entry["event"] == "stripe event's object is gone, ignored"
    ] == [("warning", gone)]
    assert first.json()["outcome"] == "ignored"
    assert again.json()["outcome"] == "duplicate"
    assert await stored_events(stripe_app, event["id"]) == [
        ("invoice.payment_succeeded", "ignored")
    ]
