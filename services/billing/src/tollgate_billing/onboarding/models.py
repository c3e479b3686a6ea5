import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class Step(StrEnum):
    CHOOSE_PLAN = "choose_plan"
    ADD_PAYMENT_METHOD = "add_payment_method"
    START_SUBSCRIPTION = "start_subscription"
    COMPLETE = "complete"


class OnboardingSession(SQLModel, table=True):
    """An organisation's one onboarding (migration 0007). What is chosen is kept here until the
    subscription starts; the payment method is the customer's own (payments/)."""

    __tablename__ = "onboarding_sessions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: uuid.UUID = Field(unique=True)
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id")
    plan_key: str | None = Field(default=None, foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    interval: str | None = Field(default=None, max_length=5)
    discount_code: str | None = Field(default=None, max_length=64)
    plan_chosen_at: datetime | None = timestamp_field(nullable=True)
    subscription_started_at: datetime | None = timestamp_field(nullable=True)
    completed_at: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
