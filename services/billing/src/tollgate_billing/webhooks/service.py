"""Receiving a Stripe event: the signature checked on the raw body, the event stored once in
the transaction of its effect."""

import stripe
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.webhooks.handlers import HANDLERS, WebhookContext
from tollgate_billing.webhooks.repository import StripeEventRepository
from tollgate_billing.webhooks.schemas import StripeEventObject, WebhookReceipt
from tollgate_shared.errors import BadRequestError

logger = structlog.get_logger(__name__)


class SignatureInvalidError(BadRequestError):
    slug, title = "stripe-signature-invalid", "Stripe signature invalid"


class EventInvalidError(BadRequestError):
    slug, title = "stripe-event-invalid", "Not a Stripe event"


def verified_event(
    payload: bytes, signature: str | None, *, secret: str, tolerance_seconds: int
) -> StripeEventObject:
    """The event, once Stripe-Signature proves Stripe signed exactly these bytes within the
    tolerance (older timestamps are replays)."""
    if not signature:
        raise SignatureInvalidError("The Stripe-Signature header is missing.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance_seconds)
    except UnicodeDecodeError as error:
        raise SignatureInvalidError("The body is not UTF-8: Stripe did not send it.") from error
    except stripe.SignatureVerificationError as error:
        raise SignatureInvalidError(f"The Stripe-Signature does not verify: {error}") from error
    try:
        return StripeEventObject.model_validate_json(payload)
    except ValidationError as error:
        raise EventInvalidError("The signed body is not a Stripe event.") from error


async def receive_event(
    sessionmaker: async_sessionmaker[AsyncSession],
    context: WebhookContext,
    event: StripeEventObject,
) -> WebhookReceipt:
    """Apply the event once. Its id is inserted in the transaction of its effect: of copies
    delivered at once, the first insert wins and the others find it taken after its commit."""
    async with sessionmaker() as session:
        if await StripeEventRepository(session).seen(event.id):
            return WebhookReceipt(event_id=event.id, outcome="duplicate")
    handler = HANDLERS.get(event.type)
    try:
        effect = await handler(event, context) if handler is not None else None
    except stripe.InvalidRequestError as error:
        if not _object_gone(error):
            raise  # another refusal: 503, Stripe delivers it again
        # Deleted in Stripe since: nothing to apply, ever. Stored as ignored (200), so Stripe
        # stops redelivering it for days.
        logger.warning(
            "stripe event's object is gone, ignored",
            event_id=event.id,
            type=event.type,
            object_id=event.object.get("id"),
        )
        effect = None
    async with sessionmaker() as session, session.begin():
        repository = StripeEventRepository(session)
        stored = await repository.claim(event.id, event.type, now=context.now)
        if stored is None:
            return WebhookReceipt(event_id=event.id, outcome="duplicate")
        outcome = await effect(session) if effect is not None else "ignored"
        if outcome != "ignored":
            stored.outcome = outcome
            await repository.save(stored)
        return WebhookReceipt(event_id=event.id, outcome=outcome)


def _object_gone(error: stripe.InvalidRequestError) -> bool:
    """Stripe's 404 resource_missing: the event's object was deleted (localstripe answers a
    404 without the code)."""
    return error.http_status == 404 or error.code == "resource_missing"
