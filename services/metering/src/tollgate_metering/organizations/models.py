import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from tollgate_metering.db_types import SCHEMA, timestamp_field


class OrganizationPlan(SQLModel, table=True):
    """An organisation's plan tier as its owner last published it (migration 0003)."""

    __tablename__ = "organizations"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(primary_key=True)
    plan: str = Field(max_length=50)
    changed_at: datetime = timestamp_field()  # the event's time: an older event never wins
