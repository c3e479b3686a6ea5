import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tollgate_keys.db_types import SCHEMA, id_field, timestamp_field


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    # The plan tier, carried in access tokens and verified keys so the gateway forwards it to
    # services and rates the org's keys by it: the rate_limit_tier of billing's subscription.
    plan: str = Field(default="free", max_length=50)
    # Suspended for non-payment (billing's subscription status `suspended`): the gateway
    # refuses the org's calls to the operator's API, Tollgate's own endpoints stay open.
    suspended: bool = Field(default=False)
    # The subscription version the plan and suspension were taken from: an older event never
    # wins.
    plan_version: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = timestamp_field(default_now=True)
