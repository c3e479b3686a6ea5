from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field

# Fixed amounts: up to 1e12 with 4 decimals (the most minor digits of any ISO 4217 currency).
AMOUNT = sa.Numeric(16, 4)


class Plan(SQLModel, table=True):
    """A plan of the catalog. Its key is its identity and is never reused (archived plans stay).
    metered_charges holds MeteredCharge objects as JSON, prices as decimal strings."""

    __tablename__ = "plans"
    __table_args__ = {"schema": SCHEMA}

    key: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    monthly_price: Decimal = Field(sa_type=AMOUNT)
    yearly_price: Decimal | None = Field(default=None, sa_type=AMOUNT)
    trial_days: int
    rate_limit_tier: str = Field(max_length=32)
    metered_charges: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
    archived_at: datetime | None = timestamp_field(nullable=True)
