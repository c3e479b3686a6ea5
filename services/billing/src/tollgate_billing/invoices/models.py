import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class InvoiceState(StrEnum):
    DRAFT = "draft"  # the period runs (or ended within the usage grace window)
    OPEN = "open"  # finalized: numbered, lines fixed, owed
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceLineKind(StrEnum):
    BASE_FEE = "base_fee"
    PRORATION = "proration"
    METERED = "metered"
    DISCOUNT = "discount"  # on the lines before it, negative (migration 0005)
    TAX = "tax"  # on the sum of the lines before it (migration 0004)


class Invoice(SQLModel, table=True):
    """One subscription period's invoice (migration 0003): a draft from the period's start,
    finalized with its lines and number once the period ended and usage had time to arrive."""

    __tablename__ = "invoices"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: uuid.UUID
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id")
    subscription_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.subscriptions.id")
    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    interval: str = Field(max_length=5)
    base_fee_due: bool
    currency: str = Field(max_length=3)
    period_start: datetime = timestamp_field()
    period_end: datetime = timestamp_field()
    ended_at: datetime | None = timestamp_field(nullable=True)
    state: str = Field(default=InvoiceState.DRAFT.value, max_length=16)
    number: str | None = Field(default=None, max_length=32)
    subtotal: int = Field(default=0, sa_type=sa.BigInteger)
    total: int = Field(default=0, sa_type=sa.BigInteger)
    usage_from: datetime | None = timestamp_field(nullable=True)
    usage_to: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field(default_now=True)
    finalized_at: datetime | None = timestamp_field(nullable=True)
    paid_at: datetime | None = timestamp_field(nullable=True)
    voided_at: datetime | None = timestamp_field(nullable=True)
    # Collection (migration 0006): when the collection job next tries the open invoice (or
    # applies the dunning action); the first failure anchors the retries and the grace period.
    next_payment_attempt_at: datetime | None = timestamp_field(nullable=True)
    payment_attempt_count: int = 0
    first_failed_at: datetime | None = timestamp_field(nullable=True)


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_lines"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    invoice_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.invoices.id")
    position: int
    kind: str = Field(max_length=16)
    description: str = Field(max_length=300)
    meter: str | None = Field(default=None, max_length=63)
    quantity: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    included: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    billable: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    unit_price: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    price_detail: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONB)
    amount: int = Field(sa_type=sa.BigInteger)
    pending_item_id: uuid.UUID | None = None


class InvoiceNumberSequence(SQLModel, table=True):
    __tablename__ = "invoice_number_sequences"
    __table_args__ = {"schema": SCHEMA}

    name: str = Field(primary_key=True, max_length=32)
    prefix: str = Field(max_length=16)
    last_number: int = Field(sa_type=sa.BigInteger)
