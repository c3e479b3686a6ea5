import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

# Groups a breakdown or the admin view answers with, the busiest first.
MAX_GROUPS = 100


class Period(StrEnum):
    """The last hour, day or 30 days, ending now."""

    HOUR = "hour"
    DAY = "day"
    THIRTY_DAYS = "30d"

    @property
    def length(self) -> timedelta:
        return _PERIOD_LENGTHS[self]


_PERIOD_LENGTHS = {
    Period.HOUR: timedelta(hours=1),
    Period.DAY: timedelta(days=1),
    # Raw events are kept 35 days, so 30 days are always complete.
    Period.THIRTY_DAYS: timedelta(days=30),
}


class Dimension(StrEnum):
    """What a breakdown groups requests by."""

    KEY = "key"
    ROUTE = "route"
    STATUS = "status"
    PLAN = "plan"


@dataclass(frozen=True)
class TrafficFilters:
    """Optional narrowing of an organisation's requests."""

    key_id: uuid.UUID | None = None
    route: str | None = None


@dataclass(frozen=True)
class TrafficRow:
    """What the repository measured for one group of requests (the summary is one group)."""

    group: str | None
    requests: int
    successes: int
    latency_percentiles: tuple[float | None, float | None, float | None]  # p50, p95, p99
    request_bytes: int
    response_bytes: int
    errors_by_status: list[tuple[int, int]]  # (status, requests), by status
    total_groups: int


class StatusCount(BaseModel):
    status: int
    requests: int


class Latency(BaseModel):
    """Interpolated percentiles (PostgreSQL's percentile_cont) of the gateway's latency_ms;
    null without requests."""

    p50: float | None
    p95: float | None
    p99: float | None


class TrafficFigures(BaseModel):
    requests: int
    success_rate: float | None = Field(
        description="Requests answered 2xx or 3xx over all requests (4xx, 429 included, and 5xx "
        "count as failures); null without requests"
    )
    latency_ms: Latency
    requests_per_second: float = Field(description="requests / the period's length in seconds")
    request_bytes: int
    response_bytes: int
    errors_by_status: list[StatusCount] = Field(description="Each status >= 400 seen, by status")


class AnalyticsWindow(BaseModel):
    period: Period
    time_from: datetime = Field(serialization_alias="from")
    time_to: datetime = Field(serialization_alias="to", description="Exclusive: now")


class AnalyticsSummary(AnalyticsWindow, TrafficFigures):
    key_id: uuid.UUID | None
    route: str | None


class GroupFigures(TrafficFigures):
    group: str | None = Field(
        description="The key id (null: requests of signed-in users), route name, status code, "
        "or plan tier ('unknown' for events recorded without one)"
    )


class AnalyticsBreakdown(AnalyticsWindow):
    by: Dimension
    key_id: uuid.UUID | None
    route: str | None
    total_groups: int = Field(description="Groups with requests, of which data has the top 100")
    data: list[GroupFigures] = Field(description="At most 100 groups, most requests first")


class OrganizationFigures(TrafficFigures):
    organization_id: uuid.UUID


class OrganizationsOverview(AnalyticsWindow):
    total_organizations: int = Field(description="Organisations with requests in the period")
    data: list[OrganizationFigures] = Field(
        description="At most 100 organisations, most requests first"
    )
