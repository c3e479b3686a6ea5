import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class Customer(SQLModel, table=True):
    """An organisation as billing knows it. plan_key mirrors its subscription's plan."""

    __tablename__ = "customers"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: uuid.UUID = Field(unique=True)
    name: str = Field(max_length=200)
    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    # Exact percent (migration 0004); None: no tax line on its invoices.
    tax_rate: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
