import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tollgate_billing.catalog.schemas import PLAN_KEY_PATTERN, RateLimitTier
from tollgate_billing.subscriptions.models import Interval, Status


class Moment(StrEnum):
    NOW = "now"
    PERIOD_END = "period_end"


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    plan: str = Field(pattern=PLAN_KEY_PATTERN, description="The key of a plan on sale")
    interval: Interval | None = Field(
        None, description="Default: the current interval if the plan is sold so, else month"
    )
    at: Moment


class SubscriptionCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Moment


class ScheduledChange(BaseModel):
    plan: str
    interval: Interval
    at: datetime = Field(description="The end of the current period")


class ProrationLine(BaseModel):
    kind: str = Field(description="proration_credit (negative amount) or proration_charge")
    plan: str
    interval: Interval
    currency: str
    amount: int = Field(description="Minor units (cents); a credit is negative")
    covered_from: datetime
    covered_to: datetime
    description: str


class SubscriptionPublic(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    organization_id: uuid.UUID
    plan: str
    rate_limit_tier: RateLimitTier
    interval: Interval
    status: Status
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    scheduled_change: ScheduledChange | None
    version: int = Field(description="Grows with every change")
    created_at: datetime
    updated_at: datetime


class SubscriptionChangeResult(SubscriptionPublic):
    proration: list[ProrationLine] = Field(
        description="Pending invoice items this request recorded (empty when nothing changed)"
    )
