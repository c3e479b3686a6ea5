import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tollgate_metering.db_types import SCHEMA, timestamp_field


class UsageEvent(SQLModel, table=True):
    """One metered event, stored once: (org_id, id) is the key that deduplicates retries.

    Indexes (migration 0001): (org_id, time desc, id desc) and (org_id, type, time desc, id desc)
    for listings and the rollups to come; BRIN on received_at for the retention sweep.
    """

    __tablename__ = "usage_events"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(primary_key=True)
    # Byte order ("C"): ids are opaque, and comparing them is cheaper without a locale.
    id: str = Field(primary_key=True, sa_type=sa.String(128, collation="C"))
    type: str = Field(max_length=63)
    subject: str = Field(max_length=256)
    time: datetime = timestamp_field()
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    received_at: datetime = timestamp_field(default_now=True)
    source: str = Field(max_length=16)  # api | gateway
