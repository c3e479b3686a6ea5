import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from tollgate_keys.db_types import SCHEMA, id_field, timestamp_field


class Role(StrEnum):
    ORG_ADMIN = "org_admin"
    BILLING_ADMIN = "billing_admin"
    SUPPORT_AGENT = "support_agent"
    MEMBER = "member"


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = {"schema": SCHEMA}

    org_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.organizations.id", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.users.id", primary_key=True, index=True)
    role: str = Field(max_length=30)
    created_at: datetime = timestamp_field(default_now=True)


class Invitation(SQLModel, table=True):
    __tablename__ = "invitations"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.organizations.id", index=True)
    email: str = Field(max_length=320)
    role: str = Field(max_length=30)
    token_hash: str = Field(unique=True)
    invited_by: uuid.UUID | None = None
    created_at: datetime = timestamp_field(default_now=True)
    expires_at: datetime = timestamp_field()
    accepted_at: datetime | None = timestamp_field(nullable=True)
