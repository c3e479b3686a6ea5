import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tollgate_billing.catalog.schemas import PLAN_KEY_PATTERN
from tollgate_billing.discounts.schemas import DiscountCodeText
from tollgate_billing.onboarding.models import Step
from tollgate_billing.payments.schemas import PaymentMethodPublic
from tollgate_billing.stripe_api.schemas import CheckoutSessionPublic
from tollgate_billing.subscriptions.models import Interval


class PlanChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(pattern=PLAN_KEY_PATTERN, description="The key of a plan on sale")
    interval: Interval = Interval.MONTH
    discount_code: DiscountCodeText | None = Field(
        None, description="Checked now, redeemed when the subscription starts"
    )


class StepState(BaseModel):
    name: Step
    required: bool = Field(description="False: may be skipped (a free plan needs no card)")
    done: bool
    done_at: datetime | None = None


class OnboardingPublic(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    status: str = Field(description="in_progress or completed")
    steps: list[StepState]
    next_step: Step | None = Field(description="The first required step not done; null: done")
    plan: str | None
    interval: Interval | None
    discount_code: str | None
    payment_method: PaymentMethodPublic | None
    created_at: datetime
    completed_at: datetime | None


class PaymentStep(OnboardingPublic):
    checkout: CheckoutSessionPublic | None = Field(
        description="With Stripe on: send the customer to checkout.url to add a card"
    )
