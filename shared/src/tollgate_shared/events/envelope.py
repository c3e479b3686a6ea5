"""The CloudEvents 1.0 JSON envelope every Tollgate event travels in."""

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CloudEvent(BaseModel):
    """type == NATS subject == tollgate.<service>.<entity>.<action>; orgid is an extension."""

    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str = "application/json"
    orgid: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CloudEvent":
        return cls.model_validate_json(raw)


def new_event(
    *,
    service: str,
    type_: str,
    data: dict[str, Any],
    org_id: uuid.UUID | str | None = None,
    subject: str | None = None,
) -> CloudEvent:
    return CloudEvent(
        source=f"/tollgate/{service}",
        type=type_,
        subject=subject,
        orgid=str(org_id) if org_id else None,
        data=data,
    )
