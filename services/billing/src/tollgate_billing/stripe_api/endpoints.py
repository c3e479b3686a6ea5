import uuid
from typing import Annotated

import stripe
import structlog
from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.auth import BillingAdmin
from tollgate_billing.stripe_api.checkout import start_setup_checkout
from tollgate_billing.stripe_api.errors import StripeDisabledError, StripeUnavailableError
from tollgate_billing.stripe_api.schemas import CheckoutSessionPublic

logger = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1/billing/payment-method", tags=["payment method"])


def _stripe(request: Request) -> stripe.StripeClient:
    client: stripe.StripeClient | None = request.app.state.stripe
    if client is None:
        raise StripeDisabledError(
            "Stripe is off (no TOLLGATE_BILLING_STRIPE_SECRET_KEY): in ledger mode a payment "
            "method is set with PUT /v1/billing/payment-method."
        )
    return client


StripeDep = Annotated[stripe.StripeClient, Depends(_stripe)]


@router.post("/checkout", response_model=CheckoutSessionPublic, status_code=201)
async def start_checkout(identity: BillingAdmin, request: Request) -> CheckoutSessionPublic:
    """A Stripe Checkout Session in setup mode: send the customer to `url`; once they added a
    card there, Stripe's webhook makes it the organisation's payment method."""
    assert identity.org_id is not None
    return await checkout_for(request, org_id=identity.org_id)


async def checkout_for(request: Request, *, org_id: uuid.UUID) -> CheckoutSessionPublic:
    """Also onboarding's payment step. 409 stripe-disabled when Stripe is off."""
    client = _stripe(request)
    # Its own short transactions around Stripe's calls: none held open over the network.
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        return await start_setup_checkout(
            sessionmaker, client, request.app.state.settings, org_id=org_id
        )
    except stripe.StripeError as error:
        # Unreachable, or an error of Stripe's own (a 5xx, rate limited): nothing was made here.
        raise StripeUnavailableError(
            f"Stripe could not start the checkout now ({type(error).__name__}); try again."
        ) from error
