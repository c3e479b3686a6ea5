import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    # An invoice's payment failed and is not paid yet (dunning retries it).
    PAST_DUE = "past_due"
    # Still unpaid after the dunning grace period (action "suspend"): the org's calls to the
    # operator's API are refused until it pays.
    SUSPENDED = "suspended"
    # The paid plan was canceled: the customer is on the default plan.
    CANCELED = "canceled"


class Subscription(SQLModel, table=True):
    """A customer's one current subscription (migration 0002). Periods are computed from
    anchor_at: period n is [anchor + n intervals, anchor + (n + 1) intervals)."""

    __tablename__ = "subscriptions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id", unique=True)
    org_id: uuid.UUID = Field(unique=True)
    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    interval: str = Field(max_length=5)
    status: str = Field(max_length=16)
    anchor_at: datetime = timestamp_field()
    period_number: int = 0
    current_period_start: datetime = timestamp_field()
    current_period_end: datetime = timestamp_field()
    trial_end: datetime | None = timestamp_field(nullable=True)
    trial_used: bool = False  # a trial is given once, on the first paid plan
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = timestamp_field(nullable=True)
    scheduled_plan_key: str | None = Field(
        default=None, foreign_key=f"{SCHEMA}.plans.key", max_length=63
    )
    scheduled_interval: str | None = Field(default=None, max_length=5)
    # Bumped by every change; events carry it so consumers keep the newest.
    version: int = Field(default=1, sa_type=sa.BigInteger)
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)


class PendingInvoiceItemKind(StrEnum):
    PRORATION_CREDIT = "proration_credit"
    PRORATION_CHARGE = "proration_charge"


class PendingInvoiceItem(SQLModel, table=True):
    """An amount owed (or credited) that the next invoice bills: the seam to the invoice slice,
    which sets invoiced_at and invoice_id when it takes an item (ADR 0016)."""

    __tablename__ = "pending_invoice_items"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id")
    subscription_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.subscriptions.id")
    kind: str = Field(max_length=32)
    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    interval: str = Field(max_length=5)
    currency: str = Field(max_length=3)
    amount: int = Field(sa_type=sa.BigInteger)  # minor units; credits are negative
    covered_from: datetime = timestamp_field()
    covered_to: datetime = timestamp_field()
    period_start: datetime = timestamp_field()
    period_end: datetime = timestamp_field()
    description: str = Field(max_length=300)
    subscription_version: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = timestamp_field(default_now=True)
    invoiced_at: datetime | None = timestamp_field(nullable=True)
    invoice_id: uuid.UUID | None = None


def in_trial(subscription: Subscription) -> bool:
    """Whether the current period is the trial, whatever the status (past_due and suspended
    hide trialing): the trial's period is the only one that ends at trial_end."""
    return (
        subscription.trial_end is not None
        and subscription.period_number == 0
        and subscription.current_period_end == subscription.trial_end
    )
