import uuid
from datetime import datetime

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
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
