"""The entitlement tables (migration 0003)."""

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tollgate_metering.db_types import SCHEMA, timestamp_field


class EntitlementOverride(SQLModel, table=True):
    """An operator's exception to the plan for one organisation and meter."""

    __tablename__ = "entitlement_overrides"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(primary_key=True)
    meter_key: str = Field(primary_key=True, max_length=63)
    usage_limit: Decimal | None = Field(default=None, sa_type=sa.Numeric)  # None: unlimited
    mode: str = Field(max_length=4)
    grace_percent: int
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)


class EntitlementState(SQLModel, table=True):
    """The last published evaluation of one entitlement."""

    __tablename__ = "entitlement_states"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(primary_key=True)
    meter_key: str = Field(primary_key=True, max_length=63)
    period_start: datetime = timestamp_field()
    period_end: datetime = timestamp_field()
    usage_limit: Decimal | None = Field(default=None, sa_type=sa.Numeric)
    mode: str = Field(max_length=4)
    grace_percent: int
    used: Decimal = Field(sa_type=sa.Numeric)
    status: str = Field(max_length=8)
    version: int = Field(sa_type=sa.BigInteger)
    evaluated_at: datetime = timestamp_field(default_now=True)
