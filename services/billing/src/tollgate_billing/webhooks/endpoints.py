from typing import Annotated

import stripe
from fastapi import APIRouter, Header, Request

from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.stripe_api.endpoints import StripeDep
from tollgate_billing.stripe_api.errors import StripeUnavailableError
from tollgate_billing.webhooks.handlers import WebhookContext
from tollgate_billing.webhooks.schemas import WebhookReceipt
from tollgate_billing.webhooks.service import receive_event, verified_event

router = APIRouter(prefix="/v1/billing/webhooks", tags=["webhooks"])


@router.post("/stripe", response_model=WebhookReceipt)
async def stripe_webhook(
    request: Request,
    client: StripeDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookReceipt:
    """Stripe's events (public through the gateway: the Stripe-Signature header is the
    credential). Each event id is applied once; unknown types are recorded and ignored."""
    settings: BillingSettings = request.app.state.settings
    assert settings.stripe_webhook_secret is not None  # required with the key
    event = verified_event(
        await request.body(),
        stripe_signature,
        secret=settings.stripe_webhook_secret.get_secret_value(),
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
    )
    context = WebhookContext(
        client=client,
        sessionmaker=request.app.state.sessionmaker,
        default_plan=settings.default_plan,
        now=utcnow(),
    )
    try:
        return await receive_event(request.app.state.sessionmaker, context, event)
    except stripe.StripeError as error:
        # Not applied and not stored: Stripe delivers it again later.
        raise StripeUnavailableError(
            "Stripe could not be asked about the event's object; it will be delivered again."
        ) from error
