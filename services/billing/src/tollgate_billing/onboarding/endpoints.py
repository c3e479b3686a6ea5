from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response, status

from tollgate_billing.auth import BillingAdmin, OrgReader
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.onboarding import service
from tollgate_billing.onboarding.models import OnboardingSession, Step
from tollgate_billing.onboarding.schemas import OnboardingPublic, PaymentStep, PlanChoice
from tollgate_billing.payments.endpoints import Collector
from tollgate_billing.payments.models import Provider
from tollgate_billing.payments.schemas import LedgerCard
from tollgate_billing.payments.service import put_ledger_card
from tollgate_billing.stripe_api.endpoints import checkout_for
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import ValidationProblem

router = APIRouter(prefix="/v1/onboarding", tags=["onboarding"])


async def _locked(identity: BillingAdmin, session: SessionDep) -> OnboardingSession:
    """The organisation's onboarding, locked until the request commits: a step retried while
    the first try still runs waits for it and then sees it done."""
    assert identity.org_id is not None
    return await service.locked(session, org_id=identity.org_id)


Onboarding = Annotated[OnboardingSession, Depends(_locked)]


def _default_plan(request: Request) -> str:
    settings: BillingSettings = request.app.state.settings
    return settings.default_plan


@router.post(
    "",
    response_model=OnboardingPublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already started: the same onboarding"}},
)
async def start_onboarding(
    identity: BillingAdmin, session: SessionDep, response: Response
) -> OnboardingPublic:
    """Start the organisation's onboarding (201), or return the one started before (200)."""
    assert identity.org_id is not None
    onboarding, created = await service.start(session, org_id=identity.org_id, now=utcnow())
    if not created:
        response.status_code = status.HTTP_200_OK
    return await service.view(session, onboarding)


@router.get("", response_model=OnboardingPublic)
async def get_onboarding(identity: OrgReader, session: SessionDep) -> OnboardingPublic:
    """Each step's state and the next required one."""
    assert identity.org_id is not None
    return await service.view(session, await service.read(session, org_id=identity.org_id))


@router.put("/plan", response_model=OnboardingPublic)
async def choose_plan(
    body: PlanChoice, onboarding: Onboarding, session: SessionDep
) -> OnboardingPublic:
    """Choose the plan and interval, with an optional discount code (checked now, redeemed
    when the subscription starts)."""
    await service.choose_plan(session, onboarding=onboarding, choice=body, now=utcnow())
    return await service.view(session, onboarding)


@router.post("/payment-method", response_model=PaymentStep)
async def add_payment_method(
    identity: BillingAdmin,
    session: SessionDep,
    request: Request,
    collector: Collector,
    card: Annotated[LedgerCard | None, Body()] = None,
) -> PaymentStep:
    """Ledger mode: the sandbox test card in the body becomes the payment method. With Stripe
    on: no body; the answer's `checkout.url` is Stripe's page, and the step is done once
    Stripe reports the card added (its webhook)."""
    assert identity.org_id is not None
    onboarding = await service.read(session, org_id=identity.org_id)
    await service.require_steps_before(session, onboarding, step=Step.ADD_PAYMENT_METHOD)
    checkout = None
    if card is not None or collector.provider == Provider.LEDGER:
        if card is None:
            raise ValidationProblem(
                "Ledger mode takes a sandbox test card: "
                '{"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030}.',
                errors=[{"loc": ["body"], "message": "a test card is required", "type": "missing"}],
            )
        await put_ledger_card(
            session, org_id=identity.org_id, card=card, provider=collector.provider, now=utcnow()
        )
    else:
        checkout = await checkout_for(request, org_id=identity.org_id)
    view = await service.view(session, onboarding)
    return PaymentStep(**view.model_dump(), checkout=checkout)


@router.post("/subscription", response_model=OnboardingPublic)
async def start_subscription(
    onboarding: Onboarding, session: SessionDep, request: Request
) -> OnboardingPublic:
    """Start the chosen plan now (with its trial, if it has one)."""
    await service.start_subscription(
        session, onboarding=onboarding, now=utcnow(), default_plan=_default_plan(request)
    )
    return await service.view(session, onboarding)


@router.post("/complete", response_model=OnboardingPublic)
async def complete_onboarding(onboarding: Onboarding, session: SessionDep) -> OnboardingPublic:
    await service.complete(session, onboarding=onboarding, now=utcnow())
    return await service.view(session, onboarding)
