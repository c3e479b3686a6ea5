"""The onboarding steps. Each takes the session locked by the caller, is idempotent (doing a
done step again with the same input changes nothing) and refuses to run before the required
steps it builds on, naming them."""

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.service import PlanArchivedError, get_plan
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.discounts.service import redeem, redeemable
from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.onboarding.models import OnboardingSession, Step
from tollgate_billing.onboarding.repository import OnboardingRepository
from tollgate_billing.onboarding.schemas import OnboardingPublic, PlanChoice, StepState
from tollgate_billing.payments.methods import current_payment_method
from tollgate_billing.payments.models import PaymentMethod
from tollgate_billing.payments.service import method_view
from tollgate_billing.subscriptions.models import Interval
from tollgate_billing.subscriptions.proration import fee_of
from tollgate_billing.subscriptions.schemas import Moment
from tollgate_billing.subscriptions.service import (
    IntervalNotOfferedError,
    change_plan,
    current_subscription,
)
from tollgate_shared.errors import ConflictError, NotFoundError

logger = structlog.get_logger(__name__)


class OnboardingNotFoundError(NotFoundError):
    slug, title = "onboarding-not-found", "Onboarding not started"


class StepMissingError(ConflictError):
    slug, title = "onboarding-step-missing", "A required step comes first"


class StepClosedError(ConflictError):
    slug, title = "onboarding-step-closed", "Step can no longer change"


class CustomerNotReadyError(ConflictError):
    slug, title = "customer-not-ready", "Billing customer not ready"


def needs_payment(plan: Plan, interval: Interval) -> bool:
    """A plan that can cost anything (a fee, or priced usage) needs a payment method."""
    return (fee_of(plan, interval) or 0) > 0 or bool(plan.metered_charges)


async def start(
    session: AsyncSession, *, org_id: uuid.UUID, now: datetime
) -> tuple[OnboardingSession, bool]:
    """The organisation's onboarding and whether this call created it (later calls return
    the same one)."""
    customer = await CustomerRepository(session).of_org(org_id)
    if customer is None:
        raise CustomerNotReadyError(
            "Billing has not yet heard of this organisation's creation; retry in a second.",
            headers={"Retry-After": "1"},
        )
    repository = OnboardingRepository(session)
    created = await repository.add_unless_org_has_one(
        OnboardingSession(org_id=org_id, customer_id=customer.id, created_at=now, updated_at=now)
    )
    onboarding = await repository.of_org(org_id)
    assert onboarding is not None
    return onboarding, created


async def locked(session: AsyncSession, *, org_id: uuid.UUID) -> OnboardingSession:
    onboarding = await OnboardingRepository(session).of_org(org_id, for_update=True)
    if onboarding is None:
        raise OnboardingNotFoundError("Start onboarding first: POST /v1/onboarding.")
    return onboarding


async def read(session: AsyncSession, *, org_id: uuid.UUID) -> OnboardingSession:
    onboarding = await OnboardingRepository(session).of_org(org_id)
    if onboarding is None:
        raise OnboardingNotFoundError("This organisation has not started onboarding.")
    return onboarding


async def choose_plan(
    session: AsyncSession, *, onboarding: OnboardingSession, choice: PlanChoice, now: datetime
) -> None:
    """Record the plan, interval and discount code, each checked now. Until the subscription
    starts the choice may change; after, only the same choice is accepted (a retry)."""
    chosen = (onboarding.plan_key, onboarding.interval, onboarding.discount_code)
    wanted = (choice.plan, choice.interval.value, choice.discount_code)
    if onboarding.subscription_started_at is not None:
        if chosen != wanted:
            raise StepClosedError(
                "The subscription has started; change the plan with "
                "POST /v1/billing/subscription/change instead."
            )
        return
    plan = await get_plan(session, key=choice.plan, include_archived=True)
    if plan.archived_at is not None:
        raise PlanArchivedError(f"The plan '{plan.key}' is no longer on sale.")
    if fee_of(plan, choice.interval) is None:
        raise IntervalNotOfferedError(
            f"The plan '{plan.key}' is not sold {choice.interval.value}ly.", plan=plan.key
        )
    if choice.discount_code is not None:
        customer = await CustomerRepository(session).get(onboarding.customer_id)
        assert customer is not None  # a foreign key
        await redeemable(
            session, customer=customer, code=choice.discount_code, plan_key=plan.key, now=now
        )
    if chosen == wanted:
        return
    onboarding.plan_key, onboarding.interval, onboarding.discount_code = wanted
    onboarding.plan_chosen_at = onboarding.updated_at = now
    await OnboardingRepository(session).save(onboarding)


async def start_subscription(
    session: AsyncSession, *, onboarding: OnboardingSession, now: datetime, default_plan: str
) -> None:
    """Move the subscription to the chosen plan now (its trial starts, if it has one) and
    redeem the discount code, in one transaction: a code that stopped being valid since it was
    chosen refuses the whole step."""
    if onboarding.subscription_started_at is not None:
        return
    await require_steps_before(session, onboarding, step=Step.START_SUBSCRIPTION)
    assert onboarding.plan_key is not None and onboarding.interval is not None
    subscription = await current_subscription(session, org_id=onboarding.org_id, for_update=True)
    await change_plan(
        session,
        subscription=subscription,
        plan_key=onboarding.plan_key,
        interval=Interval(onboarding.interval),
        at=Moment.NOW,
        now=now,
        default_plan=default_plan,
    )
    if onboarding.discount_code is not None:
        await redeem(session, org_id=onboarding.org_id, code=onboarding.discount_code, now=now)
    onboarding.subscription_started_at = onboarding.updated_at = now
    await OnboardingRepository(session).save(onboarding)


async def complete(session: AsyncSession, *, onboarding: OnboardingSession, now: datetime) -> None:
    """The last step: publishes tollgate.billing.onboarding.completed once."""
    if onboarding.completed_at is not None:
        return
    await require_steps_before(session, onboarding, step=Step.COMPLETE)
    onboarding.completed_at = onboarding.updated_at = now
    await OnboardingRepository(session).save(onboarding)
    await publish(
        session,
        BillingEvent.ONBOARDING_COMPLETED,
        org_id=onboarding.org_id,
        subject=f"onboarding/{onboarding.id}",
        data={
            "onboarding_id": str(onboarding.id),
            "organization_id": str(onboarding.org_id),
            "customer_id": str(onboarding.customer_id),
            "plan": onboarding.plan_key,
            "interval": onboarding.interval,
            "discount_code": onboarding.discount_code,
            "completed_at": now.isoformat(),
        },
    )
    logger.info("onboarding completed", org_id=str(onboarding.org_id), plan=onboarding.plan_key)


async def _plan_and_method(
    session: AsyncSession, onboarding: OnboardingSession
) -> tuple[Plan | None, PaymentMethod | None]:
    plan = (
        await get_plan(session, key=onboarding.plan_key, include_archived=True)
        if onboarding.plan_key
        else None
    )
    return plan, await current_payment_method(session, customer_id=onboarding.customer_id)


def steps(
    onboarding: OnboardingSession, plan: Plan | None, method: PaymentMethod | None
) -> list[StepState]:
    payment_required = plan is None or needs_payment(plan, Interval(onboarding.interval or "month"))
    return [
        StepState(
            name=Step.CHOOSE_PLAN,
            required=True,
            done=onboarding.plan_chosen_at is not None,
            done_at=onboarding.plan_chosen_at,
        ),
        StepState(
            name=Step.ADD_PAYMENT_METHOD,
            required=payment_required,
            done=method is not None,
            done_at=method.created_at if method else None,
        ),
        StepState(
            name=Step.START_SUBSCRIPTION,
            required=True,
            done=onboarding.subscription_started_at is not None,
            done_at=onboarding.subscription_started_at,
        ),
        StepState(
            name=Step.COMPLETE,
            required=True,
            done=onboarding.completed_at is not None,
            done_at=onboarding.completed_at,
        ),
    ]


async def require_steps_before(
    session: AsyncSession, onboarding: OnboardingSession, *, step: Step
) -> None:
    """Every required step before `step` is done, or 409 naming those missing."""
    missing = []
    for state in steps(onboarding, *await _plan_and_method(session, onboarding)):
        if state.name == step:
            break
        if state.required and not state.done:
            missing.append(state.name.value)
    if missing:
        raise StepMissingError(
            f"Do {', '.join(missing)} before {step.value}.",
            missing_steps=missing,
        )


async def view(session: AsyncSession, onboarding: OnboardingSession) -> OnboardingPublic:
    plan, method = await _plan_and_method(session, onboarding)
    states = steps(onboarding, plan, method)
    return OnboardingPublic(
        id=onboarding.id,
        organization_id=onboarding.org_id,
        status="completed" if onboarding.completed_at else "in_progress",
        steps=states,
        next_step=next((s.name for s in states if s.required and not s.done), None),
        plan=onboarding.plan_key,
        interval=Interval(onboarding.interval) if onboarding.interval else None,
        discount_code=onboarding.discount_code,
        payment_method=method_view(method) if method else None,
        created_at=onboarding.created_at,
        completed_at=onboarding.completed_at,
    )
