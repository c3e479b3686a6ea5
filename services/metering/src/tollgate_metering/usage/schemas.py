import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, PlainSerializer

from tollgate_metering.meters.schemas import Aggregation
from tollgate_metering.usage.windows import Window

MAX_SUBJECTS_PER_QUERY = 100


def _json_number(value: Decimal) -> int | float:
    """Whole numbers exactly (any size); fractions as the nearest double. Rollups store the
    exact numeric either way."""
    return int(value) if value == value.to_integral_value() else float(value)


UsageNumber = Annotated[Decimal, PlainSerializer(_json_number, return_type=int | float)]


@dataclass(frozen=True)
class UsageQuery:
    """A checked GET /v1/meters/{key}/usage request: from and to on whole minutes."""

    time_from: datetime
    time_to: datetime
    window: Window
    zone: ZoneInfo
    subjects: list[str]
    group_by: list[str]


class UsageWindow(BaseModel):
    window_start: datetime
    window_end: datetime = Field(description="Exclusive")
    subject: str | None = Field(description="Set when the query filtered by subject")
    group: dict[str, Any] = Field(
        description="The group_by properties asked for and their values (null when missing)"
    )
    value: UsageNumber


class MeterUsage(BaseModel):
    meter: str
    aggregation: Aggregation
    window: Window
    tz: str
    time_from: datetime = Field(serialization_alias="from")
    time_to: datetime = Field(serialization_alias="to")
    data: list[UsageWindow] = Field(description="Windows with usage only, oldest first")


class SubjectUsage(BaseModel):
    meter: str
    aggregation: Aggregation
    subject: str
    value: UsageNumber


class UsageSummary(BaseModel):
    period_start: datetime = Field(description="Start of the current calendar month (UTC)")
    period_end: datetime = Field(description="Start of the next one (exclusive)")
    data: list[SubjectUsage] = Field(description="Per meter and subject with usage, by key")


class PeriodMeterUsage(BaseModel):
    meter: str
    aggregation: Aggregation
    value: Annotated[Decimal, PlainSerializer(str, return_type=str)] = Field(
        description="Exact decimal string (billing multiplies it by prices)"
    )


class PeriodUsage(BaseModel):
    """GET /internal/v1/usage: each meter of an organisation over [from, to), all subjects."""

    organization_id: uuid.UUID
    time_from: datetime = Field(serialization_alias="from")
    time_to: datetime = Field(serialization_alias="to")
    data: list[PeriodMeterUsage] = Field(description="Every meter (archived too), by key")
