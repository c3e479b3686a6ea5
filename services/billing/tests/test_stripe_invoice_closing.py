"""Stripe follows our void and uncollectible invoices (the sync loop, never our transaction):
a pushed invoice voided here cannot be paid on Stripe's page any more; a payment that arrives
anyway is recorded, never marks the void invoice paid, and is listed for the operator."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import stripe

from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.service import void_invoice
from tollgate_billing.payments.dunning import apply_dunning_action
from tollgate_billing.payments.models import DunningAction
from tollgate_billing.stripe_api.invoice_closing import close_invoices_in_stripe

from .conftest import deliver, stripe_event
from .payment_helpers import attempts, invoice_row
from .subscription_helpers import new_subscription
from .test_webhooks_stripe import GOOD_CARD, pay_in_stripe, pushed_invoice

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


async def sent_state(stripe_app, invoice_id: uuid.UUID) -> str | None:
    async with stripe_app.state.sessionmaker() as session:
        row = await session.execute(
            sa.text("SELECT sent_state FROM billing.stripe_invoices WHERE invoice_id = :id"),
            {"id": invoice_id},
        )
        value: str | None = row.scalar_one()
        return value


async def stripe_status(localstripe, stripe_invoice: str) -> str:
    status: str = (await localstripe.client().v1.invoices.retrieve_async(stripe_invoice)).status
    return status


async def keys_sent(localstripe, key: str) -> list[str]:
    return [r["path"] for r in await localstripe.requests() if r["idempotency_key"] == key]


def unreachable_stripe(localstripe) -> stripe.StripeClient:
    return stripe.StripeClient(
        localstripe.secret_key,
        base_addresses={"api": "http://127.0.0.1:9"},  # nothing listens: connection refused
        http_client=stripe.HTTPXClient(timeout=2),
    )


async def test_an_invoice_voided_here_is_voided_in_stripe_once_and_after_an_outage(
    stripe_app, stripe_client, localstripe, operator
):
    sessions = stripe_app.state.sessionmaker
    org_id = await new_subscription(sessions, now=NOW)
    invoice_id, stripe_invoice, _ = await pushed_invoice(stripe_app, org_id)

    voided = await stripe_client.post(
        f"/v1/billing/admin/invoices/{invoice_id}/void", headers=operator
    )
    assert voided.status_code == 200, voided.text
    # The void's own transaction asked Stripe nothing: the invoice is still open there.
    assert await stripe_status(localstripe, stripe_invoice) == "open"
    assert await keys_sent(localstripe, f"tollgate-invoice-void-{invoice_id}") == []

    # Stripe unreachable: nothing recorded, the next round tries again.
    await close_invoices_in_stripe(sessions, unreachable_stripe(localstripe))
    assert await sent_state(stripe_app, invoice_id) is None
    assert await stripe_status(localstripe, stripe_invoice) == "open"

    await close_invoices_in_stripe(sessions, stripe_app.state.stripe)

    assert await stripe_status(localstripe, stripe_invoice) == "void"
    assert await sent_state(stripe_app, invoice_id) == "void"
    assert await keys_sent(localstripe, f"tollgate-invoice-void-{invoice_id}") == [
        f"/v1/invoices/{stripe_invoice}/void"
    ]
    # Done: a later round asks Stripe nothing about it.
    before = len(await localstripe.requests())
    await close_invoices_in_stripe(sessions, stripe_app.state.stripe)
    sent_after = [r["path"] for r in (await localstripe.requests())[before:]]
    assert not [path for path in sent_after if stripe_invoice in path]
    # And the customer can no longer pay it on Stripe's side.
    refused = await localstripe.client().v1.invoices.retrieve_async(stripe_invoice)
    assert refused.status == "void"


async def test_dunning_uncollectible_is_followed_in_stripe_then_a_void_after_it(
    stripe_app, localstripe
):
    sessions = stripe_app.state.sessionmaker
    org_id = await new_subscription(sessions, now=NOW)
    invoice_id, stripe_invoice, _ = await pushed_invoice(stripe_app, org_id)
    async with sessions() as session, session.begin():
        invoice = await InvoiceRepository(session).issued(invoice_id, for_update=True)
        assert invoice is not None
        await apply_dunning_action(
            session, invoice=invoice, action=DunningAction.DOWNGRADE, now=NOW, default_plan="free"
        )

    await close_invoices_in_stripe(sessions, stripe_app.state.stripe)

    assert await stripe_status(localstripe, stripe_invoice) == "uncollectible"
    assert await sent_state(stripe_app, invoice_id) == "uncollectible"
    assert await keys_sent(localstripe, f"tollgate-invoice-uncollectible-{invoice_id}") == [
        f"/v1/invoices/{stripe_invoice}/mark_uncollectible"
    ]

    # The operator then forgives it: void here, void in Stripe.
    async with sessions() as session, session.begin():
        await void_invoice(session, invoice_id=invoice_id, now=NOW)
    await close_invoices_in_stripe(sessions, stripe_app.state.stripe)

    assert await stripe_status(localstripe, stripe_invoice) == "void"
    assert await sent_state(stripe_app, invoice_id) == "void"


async def test_a_payment_of_a_void_invoice_is_recorded_listed_and_never_marks_it_paid(
    stripe_app, stripe_client, localstripe, operator
):
    sessions = stripe_app.state.sessionmaker
    org_id = await new_subscription(sessions, now=NOW)
    invoice_id, stripe_invoice, customer = await pushed_invoice(stripe_app, org_id)
    voided = await stripe_client.post(
        f"/v1/billing/admin/invoices/{invoice_id}/void", headers=operator
    )
    assert voided.status_code == 200, voided.text
    # The customer pays on Stripe's page before the sync loop voids it there.
    await pay_in_stripe(localstripe, customer, stripe_invoice, GOOD_CARD)
    event = await stripe_event(localstripe, "invoice.payment_succeeded", stripe_invoice)

    response = await deliver(stripe_client, localstripe, event)

    assert response.status_code == 200, response.text
    async with sessions() as session:
        assert (await invoice_row(session, invoice_id)).state == "void"
        assert await attempts(session, invoice_id) == [
            (1, "stripe", stripe_invoice, "succeeded", None)
        ]
    listed = await stripe_client.get(
        "/v1/billing/admin/payments",
        params={"outcome": "succeeded", "invoice_state": "void", "limit": 100},
        headers=operator,
    )
    assert listed.status_code == 200, listed.text
    mine = [item for item in listed.json()["items"] if item["invoice_id"] == str(invoice_id)]
    assert [(item["reference"], item["invoice_state"]) for item in mine] == [
        (stripe_invoice, "void")
    ]
    # The sync loop finds it paid in Stripe: nothing it can void, and it stops asking.
    await close_invoices_in_stripe(sessions, stripe_app.state.stripe)
    assert await stripe_status(localstripe, stripe_invoice) == "paid"
    assert await sent_state(stripe_app, invoice_id) == "void"
    assert await keys_sent(localstripe, f"tollgate-invoice-void-{invoice_id}") == []
