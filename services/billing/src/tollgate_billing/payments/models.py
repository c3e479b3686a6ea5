import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class Provider(StrEnum):
    LEDGER = "ledger"  # no payment provider: Tollgate's own sandbox (test cards)
    STRIPE = "stripe"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"  # a provider still processing (never set by the ledger)


class DunningAction(StrEnum):
    DOWNGRADE = "downgrade"  # to the default plan, the invoice uncollectible
    SUSPEND = "suspend"  # the org's calls to the operator's API refused until paid


class PaymentMethod(SQLModel, table=True):
    """A customer's one current way to pay (migration 0006). Only what a receipt shows: the
    card number itself is never stored (the provider keeps it, behind `reference`)."""

    __tablename__ = "payment_methods"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id", unique=True)
    org_id: uuid.UUID
    provider: str = Field(max_length=16)
    reference: str | None = Field(default=None, max_length=255)  # e.g. Stripe's pm_...
    brand: str = Field(max_length=32)
    last4: str = Field(max_length=4)
    exp_month: int
    exp_year: int
    created_at: datetime = timestamp_field(default_now=True)


class PaymentAttempt(SQLModel, table=True):
    """One try to collect an invoice, as its provider reported it; (provider, reference) is
    unique, so a provider's report applied twice records one attempt."""

    __tablename__ = "payment_attempts"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    invoice_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.invoices.id")
    org_id: uuid.UUID
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id")
    provider: str = Field(max_length=16)
    reference: str | None = Field(default=None, max_length=255)
    outcome: str = Field(max_length=16)
    amount: int = Field(sa_type=sa.BigInteger)  # minor units of currency
    currency: str = Field(max_length=3)
    failure_reason: str | None = Field(default=None, max_length=255)
    attempt_number: int
    created_at: datetime = timestamp_field(default_now=True)


class DunningPolicy(SQLModel, table=True):
    """The operator's dunning settings, written at every start (one row): payment outcomes
    reported by a provider's webhook schedule retries from it without the settings at hand,
    and every replica reads the same schedule."""

    __tablename__ = "dunning_policy"
    __table_args__ = {"schema": SCHEMA}

    id: int = Field(default=1, primary_key=True)
    retry_days: list[int] = Field(sa_type=JSONB)  # days after the first failure
    grace_days: int
    action: str = Field(max_length=16)
    updated_at: datetime = timestamp_field(default_now=True)
