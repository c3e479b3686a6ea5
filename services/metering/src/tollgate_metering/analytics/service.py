"""The rules of request analytics: which requests count, over which period, and the figures."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.analytics.repository import AnalyticsRepository
from tollgate_metering.analytics.schemas import (
    MAX_GROUPS,
    AnalyticsBreakdown,
    AnalyticsSummary,
    Dimension,
    GroupFigures,
    Latency,
    OrganizationFigures,
    OrganizationsOverview,
    Period,
    StatusCount,
    TrafficFigures,
    TrafficFilters,
    TrafficRow,
)
from tollgate_metering.db_types import utcnow


def _figures(row: TrafficRow | None, period: Period) -> TrafficFigures:
    if row is None:
        return TrafficFigures(
            requests=0,
            success_rate=None,
            latency_ms=Latency(p50=None, p95=None, p99=None),
            requests_per_second=0.0,
            request_bytes=0,
            response_bytes=0,
            errors_by_status=[],
        )
    p50, p95, p99 = row.latency_percentiles
    return TrafficFigures(
        requests=row.requests,
        success_rate=row.successes / row.requests,
        latency_ms=Latency(p50=p50, p95=p95, p99=p99),
        requests_per_second=row.requests / period.length.total_seconds(),
        request_bytes=row.request_bytes,
        response_bytes=row.response_bytes,
        errors_by_status=[
            StatusCount(status=status, requests=count) for status, count in row.errors_by_status
        ],
    )


def _window(period: Period, now: datetime | None) -> tuple[datetime, datetime]:
    time_to = now or utcnow()
    return time_to - period.length, time_to


async def summary(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    period: Period,
    filters: TrafficFilters,
    now: datetime | None = None,
) -> AnalyticsSummary:
    """The organisation's gateway requests of the period ending now, as one set of figures."""
    time_from, time_to = _window(period, now)
    rows = await AnalyticsRepository(session).traffic(
        org_id=org_id,
        time_from=time_from,
        time_to=time_to,
        filters=filters,
        group_by=None,
        limit=1,
        from_rollup=period != Period.HOUR,
    )
    return AnalyticsSummary(
        period=period,
        time_from=time_from,
        time_to=time_to,
        key_id=filters.key_id,
        route=filters.route,
        **_figures(rows[0] if rows else None, period).model_dump(),
    )


async def breakdown(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    period: Period,
    by: Dimension,
    filters: TrafficFilters,
    now: datetime | None = None,
) -> AnalyticsBreakdown:
    """The same figures per key, route, status or plan tier: the 100 busiest groups."""
    time_from, time_to = _window(period, now)
    rows = await AnalyticsRepository(session).traffic(
        org_id=org_id,
        time_from=time_from,
        time_to=time_to,
        filters=filters,
        group_by=by,
        limit=MAX_GROUPS,
        from_rollup=period != Period.HOUR,
    )
    return AnalyticsBreakdown(
        period=period,
        time_from=time_from,
        time_to=time_to,
        by=by,
        key_id=filters.key_id,
        route=filters.route,
        total_groups=rows[0].total_groups if rows else 0,
        data=[GroupFigures(group=row.group, **_figures(row, period).model_dump()) for row in rows],
    )


async def organizations_overview(
    session: AsyncSession, *, period: Period, now: datetime | None = None
) -> OrganizationsOverview:
    """Every organisation's gateway requests of the period: the 100 busiest (platform view)."""
    time_from, time_to = _window(period, now)
    rows = await AnalyticsRepository(session).traffic(
        org_id=None,
        time_from=time_from,
        time_to=time_to,
        filters=TrafficFilters(),
        group_by="organization",
        limit=MAX_GROUPS,
        from_rollup=period != Period.HOUR,
    )
    data = []
    for row in rows:
        assert row.group is not None  # every event has an organisation
        data.append(
            OrganizationFigures(
                organization_id=uuid.UUID(row.group), **_figures(row, period).model_dump()
            )
        )
    return OrganizationsOverview(
        period=period,
        time_from=time_from,
        time_to=time_to,
        total_organizations=rows[0].total_groups if rows else 0,
        data=data,
    )
