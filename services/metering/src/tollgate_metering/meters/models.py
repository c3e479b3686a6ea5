import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from tollgate_metering.db_types import SCHEMA, timestamp_field


class Meter(SQLModel, table=True):
    """A meter an organisation defined. Its key is its identity and the type of its events, and
    is never reused within the organisation (archived meters included)."""

    __tablename__ = "meters"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    aggregation: str = Field(max_length=16)
    value_property: str | None = Field(default=None, max_length=64)
    group_by: list[str] = Field(default_factory=list, sa_type=ARRAY(sa.Text))
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
    archived_at: datetime | None = timestamp_field(nullable=True)
