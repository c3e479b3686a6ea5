import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tollgate_metering.analytics import service
from tollgate_metering.analytics.schemas import (
    AnalyticsBreakdown,
    AnalyticsSummary,
    Dimension,
    OrganizationsOverview,
    Period,
    TrafficFilters,
)
from tollgate_metering.auth import OrgReader, PlatformAdmin
from tollgate_shared.database import SessionDep

router = APIRouter(tags=["analytics"])


def _filters(
    key_id: uuid.UUID | None = None,
    route: Annotated[str | None, Query(min_length=1, max_length=63)] = None,
) -> TrafficFilters:
    return TrafficFilters(key_id=key_id, route=route)


Filters = Annotated[TrafficFilters, Depends(_filters)]


@router.get("/v1/analytics/summary", response_model=AnalyticsSummary)
async def analytics_summary(
    identity: OrgReader, session: SessionDep, period: Period, filters: Filters
) -> AnalyticsSummary:
    """Your organisation's requests through the gateway over the last hour, day or 30 days:
    count, success rate, latency percentiles, requests per second, bytes, errors by status.
    `key_id` and `route` narrow it to one API key or route."""
    assert identity.org_id is not None
    return await service.summary(session, org_id=identity.org_id, period=period, filters=filters)


@router.get("/v1/analytics/breakdown", response_model=AnalyticsBreakdown)
async def analytics_breakdown(
    identity: OrgReader, session: SessionDep, period: Period, by: Dimension, filters: Filters
) -> AnalyticsBreakdown:
    """The summary's figures per API key, route, status or plan tier: the 100 groups with the
    most requests."""
    assert identity.org_id is not None
    return await service.breakdown(
        session, org_id=identity.org_id, period=period, by=by, filters=filters
    )


@router.get("/v1/admin/analytics/organizations", response_model=OrganizationsOverview)
async def organizations_overview(
    _admin: PlatformAdmin, session: SessionDep, period: Period
) -> OrganizationsOverview:
    """Platform view: the summary's figures per organisation, the 100 with the most requests."""
    return await service.organizations_overview(session, period=period)
