"""Column helpers shared by this service's models."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from tollgate_billing.config import SERVICE

SCHEMA = SERVICE


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field(*, nullable: bool = False, default_now: bool = False, **kwargs: Any) -> Any:
    if default_now:
        kwargs["default_factory"] = utcnow
    elif nullable:
        kwargs["default"] = None
    return Field(sa_type=sa.DateTime(timezone=True), nullable=nullable, **kwargs)
