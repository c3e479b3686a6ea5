import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class DiscountDuration(StrEnum):
    ONCE = "once"  # the next invoice finalized
    REPEATING = "repeating"  # the next `periods` invoices finalized
    FOREVER = "forever"


class DiscountCode(SQLModel, table=True):
    """A code the operator hands out (migration 0005): percent XOR amount_off."""

    __tablename__ = "discount_codes"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(max_length=64)  # as created; unique case-insensitively
    percent: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    amount_off: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, max_length=3)
    duration: str = Field(max_length=9)
    periods: int | None = None
    expires_at: datetime | None = timestamp_field(nullable=True)
    max_redemptions: int | None = None
    redemptions: int = 0
    plans: list[str] | None = Field(default=None, sa_type=JSONB)
    created_at: datetime = timestamp_field(default_now=True)
    archived_at: datetime | None = timestamp_field(nullable=True)


class DiscountRedemption(SQLModel, table=True):
    """A customer's use of a code. periods_left None: forever; ended_at set once used up."""

    __tablename__ = "discount_redemptions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    discount_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.discount_codes.id")
    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id")
    org_id: uuid.UUID
    periods_left: int | None = None
    redeemed_at: datetime = timestamp_field(default_now=True)
    ended_at: datetime | None = timestamp_field(nullable=True)
