"""What each Stripe event type does. A handler first re-reads the object from Stripe (outside
any transaction: the event's snapshot may be older than a later event already applied), then
returns the effect to apply in the transaction that stores the event; None when there is
nothing to do."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.payments.methods import set_payment_method
from tollgate_billing.payments.models import Provider
from tollgate_billing.payments.outcomes import payment_failed, payment_succeeded
from tollgate_billing.stripe_api.client import ORG_METADATA, field_of, idempotent, metadata_of
from tollgate_billing.stripe_api.collector import failure_reference
from tollgate_billing.stripe_api.push_lock import advisory_lock
from tollgate_billing.stripe_api.repository import CheckoutOrder, StripeRepository
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.schemas import Moment
from tollgate_billing.subscriptions.service import NothingToCancelError, cancel
from tollgate_billing.webhooks.schemas import StripeEventObject

logger = structlog.get_logger(__name__)

# The effect in the event's transaction: "applied" when it changed something here, "ignored"
# when it is not ours, "superseded" when it is ours but a newer one of its kind was applied.
Outcome = Literal["applied", "ignored", "superseded"]
Effect = Callable[[AsyncSession], Awaitable[Outcome]]
STRIPE = Provider.STRIPE.value
GENERIC_FAILURE = "payment_failed"
# A subscription in these states has ended in Stripe.
ENDED = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class WebhookContext:
    client: stripe.StripeClient
    sessionmaker: async_sessionmaker[AsyncSession]
    default_plan: str
    now: datetime


def _object_id(event: StripeEventObject) -> str | None:
    value = event.object.get("id")
    return value if isinstance(value, str) and value else None


async def invoice_outcome(event: StripeEventObject, context: WebhookContext) -> Effect | None:
    """invoice.paid, invoice.payment_succeeded, invoice.payment_failed: what Stripe says of the
    invoice now decides. Paid is paid, whatever event arrives after; a failure is recorded only
    while Stripe still says unpaid."""
    stripe_id = _object_id(event)
    if stripe_id is None:
        return None
    fresh = await context.client.v1.invoices.retrieve_async(stripe_id)
    paid = fresh.status == "paid"
    if not paid and event.type != "invoice.payment_failed":
        return None  # a success Stripe no longer confirms (refunded, or a stale snapshot)
    reason = None if paid else await _failure_reason(context.client, fresh)

    async def apply(session: AsyncSession) -> Outcome:
        invoice_id = await StripeRepository(session).invoice_of_stripe(fresh.id)
        if invoice_id is None:
            return "ignored"  # not one we pushed (the operator's own invoice in Stripe)
        if reason is None:
            await payment_succeeded(
                session, invoice_id=invoice_id, now=context.now, provider=STRIPE, reference=fresh.id
            )
        else:
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=context.now,
                provider=STRIPE,
                reference=failure_reference(fresh),
                reason=reason,
            )
        return "applied"

    return apply


async def _failure_reason(client: stripe.StripeClient, invoice: stripe.Invoice) -> str:
    """The decline code of the invoice's last payment, where the API version still links the
    invoice to its payment intent (localstripe does); a generic reason otherwise."""
    intent_id = field_of(invoice, "payment_intent")
    if isinstance(intent_id, str):
        intent = await client.v1.payment_intents.retrieve_async(intent_id)
        error = intent.last_payment_error
        if error is not None and error.code:
            return error.code
    return GENERIC_FAILURE


async def checkout_completed(event: StripeEventObject, context: WebhookContext) -> Effect | None:
    """A setup-mode Checkout Session completed: its SetupIntent's card becomes the customer's
    payment method here, and its default for invoices in Stripe, unless the card of another
    session of the customer is newer (made later by Stripe): webhooks arrive in any order, and
    the card the customer gave last stays on file. An older one arriving later is recorded as
    superseded and changes nothing, here or in Stripe."""
    session_id = _object_id(event)
    if session_id is None:
        return None
    client = context.client
    checkout = await client.v1.checkout.sessions.retrieve_async(session_id)
    intent_id = checkout.setup_intent
    if checkout.mode != "setup" or checkout.status != "complete" or not intent_id:
        return None
    intent = await client.v1.setup_intents.retrieve_async(
        intent_id if isinstance(intent_id, str) else intent_id.id
    )
    method_id = intent.payment_method
    if intent.status != "succeeded" or not method_id:
        return None
    method = await client.v1.payment_methods.retrieve_async(
        method_id if isinstance(method_id, str) else method_id.id
    )
    card = method.card
    customer_ref = checkout.customer
    stripe_customer = customer_ref if isinstance(customer_ref, str) else None
    if card is None or stripe_customer is None:
        return None
    order = CheckoutOrder(datetime.fromtimestamp(method.created, UTC), checkout.id)
    sessionmaker = context.sessionmaker
    # One session of the customer at a time, across replicas, from reading the newest to
    # recording this one: two sessions applied at once must leave Stripe's default on the
    # newer card. No transaction is held over Stripe's call (the lock has its own connection).
    async with advisory_lock(sessionmaker, f"tollgate-stripe-checkout-{stripe_customer}"):
        async with sessionmaker() as session:
            newest = await StripeRepository(session).newest_checkout_of(stripe_customer)
        superseded = newest is not None and order.is_older_than(newest)
        if not superseded:
            await client.v1.customers.update_async(
                stripe_customer,
                {"invoice_settings": {"default_payment_method": method.id}},
                idempotent("default-payment-method", checkout.id),
            )
            async with sessionmaker() as session, session.begin():
                await StripeRepository(session).record_newest_checkout(stripe_customer, order)

    async def apply(session: AsyncSession) -> Outcome:
        repository = StripeRepository(session)
        customer = await repository.customer_of_stripe(stripe_customer)
        if customer is None:
            return "ignored"
        # Under the row lock: a newer session recorded since (or before) wins.
        newest = await repository.newest_checkout_of(stripe_customer, for_update=True)
        if newest is not None and newest.session_id != order.session_id:
            logger.info(
                "checkout session superseded by a newer one",
                checkout_session_id=checkout.id,
                newer_checkout_session_id=newest.session_id,
                stripe_customer=stripe_customer,
            )
            return "superseded"
        await set_payment_method(
            session,
            customer=customer,
            provider=STRIPE,
            reference=method.id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            now=context.now,
        )
        return "applied"

    return apply


async def subscription_changed(event: StripeEventObject, context: WebhookContext) -> Effect | None:
    """customer.subscription.updated / deleted. Tollgate bills by its own invoices, not by
    Stripe subscriptions; a subscription the operator made in Stripe with metadata
    tollgate_org_id says the organisation's intent: once it ends (deleted, canceled, or set to
    cancel at its period's end) the organisation's paid plan is canceled at its period's end.
    Stripe never extends or changes a Tollgate plan (ADR 0021)."""
    subscription_id = _object_id(event)
    if subscription_id is None:
        return None
    try:
        fresh = await context.client.v1.subscriptions.retrieve_async(subscription_id)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
        ending, snapshot = True, event.object  # gone from Stripe: ended
        # The snapshot is only the event's JSON: metadata not an object is none.
        snapshot_metadata = snapshot.get("metadata")
        metadata = snapshot_metadata if isinstance(snapshot_metadata, dict) else {}
        stripe_customer = snapshot.get("customer")
    else:
        ending = fresh.status in ENDED or bool(fresh.cancel_at_period_end)
        metadata, stripe_customer = metadata_of(fresh), fresh.customer
    try:
        org_id = uuid.UUID(str(metadata.get(ORG_METADATA)))
    except ValueError:
        return None
    if not ending or not isinstance(stripe_customer, str) or "\x00" in stripe_customer:
        return None  # (a NUL is no Stripe id, and PostgreSQL refuses it in text: a 500)

    async def apply(session: AsyncSession) -> Outcome:
        customer = await StripeRepository(session).customer_of_stripe(stripe_customer)
        if customer is None or customer.org_id != org_id:
            return "ignored"  # metadata naming another organisation than the Stripe customer's
        subscription = await SubscriptionRepository(session).of_org(org_id, for_update=True)
        if subscription is None:
            return "ignored"
        try:
            await cancel(
                session,
                subscription=subscription,
                at=Moment.PERIOD_END,
                now=context.now,
                default_plan=context.default_plan,
            )
        except NothingToCancelError:
            return "ignored"
        return "applied"

    return apply


Handler = Callable[[StripeEventObject, WebhookContext], Awaitable[Effect | None]]
HANDLERS: dict[str, Handler] = {
    "invoice.paid": invoice_outcome,
    "invoice.payment_succeeded": invoice_outcome,
    "invoice.payment_failed": invoice_outcome,
    "checkout.session.completed": checkout_completed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
}
