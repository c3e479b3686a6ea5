import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from tollgate_metering.meters.schemas import MeterKey

MAX_EVENTS_PER_REQUEST = 1000
MAX_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 32
Source = Literal["api", "gateway"]

EventId = Annotated[
    str, Field(pattern=r"^[\x21-\x7e]{1,128}$", description="1-128 visible ASCII characters")
]
Subject = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The customer the usage is billed to",
    ),
]


@dataclass(frozen=True)
class TimeRules:
    """How far from the server's clock an event's time may be."""

    late: timedelta
    future_tolerance: timedelta


@dataclass(frozen=True)
class TimeWindow:
    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, now: datetime, rules: TimeRules) -> "TimeWindow":
        return cls(earliest=now - rules.late, latest=now + rules.future_tolerance)


def _rfc3339_text(value: Any) -> Any:
    # pydantic would also read a number as seconds since 1970: refuse it, a unit mistake
    # (milliseconds) would silently land in another year.
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 date-time string")
    return value


def _check_nesting_and_characters(data: dict[str, Any]) -> None:
    """Refuse data nested deeper than MAX_DATA_DEPTH (it could be stored but not read back
    through the API: serializers recurse) and strings with NUL (jsonb cannot store it)."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise PydanticCustomError("nul_character", "data may not contain the NUL character")
        elif isinstance(item, dict | list):
            if depth > MAX_DATA_DEPTH:
                raise PydanticCustomError(
                    "data_too_deep",
                    "data nests objects and arrays more than {limit} levels deep",
                    {"limit": MAX_DATA_DEPTH},
                )
            children = [*item, *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def _storable_json(data: dict[str, Any]) -> dict[str, Any]:
    """Only what PostgreSQL's jsonb can hold and the API can give back."""
    _check_nesting_and_characters(data)
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        raise PydanticCustomError(
            "finite_number", "data may hold only finite numbers (no NaN or Infinity)"
        ) from None
    if len(text.encode()) > MAX_DATA_BYTES:
        raise PydanticCustomError(
            "data_too_large", "data is larger than {limit} bytes as JSON", {"limit": MAX_DATA_BYTES}
        )
    return data


class EventIn(BaseModel):
    """One usage event, shaped like a CloudEvent (structured JSON)."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: EventId = Field(description="Unique per organisation: a repeat is counted once")
    type: MeterKey
    subject: Subject
    time: Annotated[AwareDatetime | None, BeforeValidator(_rfc3339_text)] = Field(
        None, description="When the usage happened (RFC 3339 with offset); default: now"
    )
    data: Annotated[dict[str, Any], AfterValidator(_storable_json)] = Field(
        default_factory=dict, description=f"At most {MAX_DATA_BYTES} bytes as JSON"
    )
    # Accepted so CloudEvents SDKs can send their events unchanged; not stored.
    source: str | None = Field(None, max_length=1024)
    datacontenttype: Literal["application/json"] | None = None

    @field_validator("time")
    @classmethod
    def _within_window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        window = info.context
        if value is None or not isinstance(window, TimeWindow):
            return value
        if value < window.earliest:
            raise PydanticCustomError(
                "time_too_old",
                "time is before {earliest}, the oldest accepted now (late-event window)",
                {"earliest": window.earliest.isoformat()},
            )
        if value > window.latest:
            raise PydanticCustomError(
                "time_in_future",
                "time is after {latest}, the latest accepted now (clock skew tolerance)",
                {"latest": window.latest.isoformat()},
            )
        return value


@dataclass(frozen=True)
class NewEvent:
    """A valid event ready to store, its data serialized for the bulk insert."""

    id: str
    type: str
    subject: str
    time: datetime
    data_json: str


class FieldError(BaseModel):
    loc: list[str]
    message: str
    type: str


class RejectedEvent(BaseModel):
    index: int = Field(description="Position in the request (0 for a single event)")
    id: str | None = Field(description="The event's id, when it had a usable one")
    errors: list[FieldError]


class IngestResult(BaseModel):
    inserted: int = Field(description="New events stored")
    duplicates: int = Field(description="Valid events whose id was already stored (not counted)")
    rejected: list[RejectedEvent] = Field(description="Invalid events, none of them stored")


class EventFilters(BaseModel):
    type: str | None = None
    subject: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None


class UsageEventPublic(BaseModel):
    id: str
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]
    received_at: datetime
    source: Source = Field(description="api: sent to POST /v1/events; gateway: a request")
