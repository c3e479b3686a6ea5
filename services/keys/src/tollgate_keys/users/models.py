import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from tollgate_keys.db_types import SCHEMA, id_field, timestamp_field


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = id_field()
    email: str = Field(max_length=320, unique=True)  # stored lower-cased
    full_name: str | None = Field(default=None, max_length=200)
    password_hash: str
    is_super_admin: bool = False
    created_at: datetime = timestamp_field(default_now=True)


class RefreshToken(SQLModel, table=True):
    """Refresh tokens rotate on every use; a reused (already rotated) token revokes the family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.users.id", index=True)
    org_id: uuid.UUID | None = Field(default=None, foreign_key=f"{SCHEMA}.organizations.id")
    token_hash: str = Field(unique=True)
    created_at: datetime = timestamp_field(default_now=True)
    expires_at: datetime = timestamp_field()
    revoked_at: datetime | None = timestamp_field(nullable=True)
