import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from tollgate_keys.db_types import SCHEMA, id_field, timestamp_field


class ApiKey(SQLModel, table=True):
    """A key as the customer manages it; its secrets (current and rotated-out) live apart."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.Index("api_keys_org_listing", "org_id", "created_at", "id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.organizations.id")
    name: str = Field(max_length=100)
    environment: str = Field(max_length=4)  # live | test
    scopes: list[str] = Field(sa_type=ARRAY(sa.Text))
    # The key's own limits, e.g. {"per_minute": 60}, sent to the gateway with the verified key,
    # which enforces them on top of the org's plan (docs/adr/0010).
    rate_limit: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    display_prefix: str = Field(max_length=16)
    last_four: str = Field(max_length=4)
    created_by: str | None = Field(default=None, max_length=80)
    created_at: datetime = timestamp_field(default_now=True)
    updated_at: datetime = timestamp_field(default_now=True)
    expires_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)
    expiry_announced_at: datetime | None = timestamp_field(nullable=True)
    last_used_at: datetime | None = timestamp_field(nullable=True)
    request_count: int = Field(default=0, sa_type=sa.BigInteger)


class ApiKeySecret(SQLModel, table=True):
    """One secret of a key, stored only as its SHA-256 hash. Rotation adds one and gives the
    previous ones an expiry (the grace period)."""

    __tablename__ = "api_key_secrets"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = id_field()
    key_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.api_keys.id", index=True)
    secret_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = timestamp_field(default_now=True)
    expires_at: datetime | None = timestamp_field(nullable=True)
    expiry_announced_at: datetime | None = timestamp_field(nullable=True)
