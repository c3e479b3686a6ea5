"""The rules for usage: one meter's usage in windows, and the current period's summary."""

import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.db_types import utcnow
from tollgate_metering.entitlements.measure import used_in_period
from tollgate_metering.entitlements.status import Period
from tollgate_metering.meters.schemas import Aggregation, MeterPublic
from tollgate_metering.meters.service import list_meters
from tollgate_metering.usage.repository import UsageRepository
from tollgate_metering.usage.schemas import (
    MeterUsage,
    PeriodMeterUsage,
    PeriodUsage,
    SubjectUsage,
    UsageQuery,
    UsageSummary,
    UsageWindow,
)
from tollgate_metering.usage.windows import month_start, next_month_start, window_boundaries


async def meter_usage(
    session: AsyncSession, *, org_id: uuid.UUID, meter: MeterPublic, query: UsageQuery
) -> MeterUsage:
    """Usage per window in the query's time zone; per subject when it filters by subject."""
    boundaries = window_boundaries(
        start=query.time_from, end=query.time_to, window=query.window, zone=query.zone
    )
    rows = await UsageRepository(session).aggregate(
        org_id=org_id,
        meter_keys=[meter.key],
        aggregation=meter.aggregation,
        time_from=query.time_from,
        time_to=query.time_to,
        boundaries=boundaries,
        subjects=query.subjects,
        by_subject=bool(query.subjects),
        group_by=query.group_by,
    )
    windows = []
    for row in rows:
        # width_bucket counts from 1: bucket i lies in [boundaries[i - 1], boundaries[i]).
        assert row.window_index is not None
        windows.append(
            UsageWindow(
                window_start=boundaries[row.window_index - 1],
                window_end=boundaries[row.window_index],
                subject=row.subject,
                group=dict(zip(query.group_by, row.group_values, strict=True)),
                value=row.value,
            )
        )
    return MeterUsage(
        meter=meter.key,
        aggregation=meter.aggregation,
        window=query.window,
        tz=query.zone.key,
        time_from=query.time_from,
        time_to=query.time_to,
        data=windows,
    )


async def usage_summary(
    session: AsyncSession, *, org_id: uuid.UUID, subjects: list[str], now: datetime | None = None
) -> UsageSummary:
    """Each meter's usage per subject in the current calendar month (UTC), the period billing
    will use until it publishes billing periods of its own."""
    now = now or utcnow()
    period_start, period_end = month_start(now), next_month_start(now)
    meters = await list_meters(session, org_id=org_id, include_archived=True)
    keys_by_aggregation: dict[Aggregation, list[str]] = defaultdict(list)
    for meter in meters:
        keys_by_aggregation[meter.aggregation].append(meter.key)
    repository = UsageRepository(session)
    data: list[SubjectUsage] = []
    # One query per aggregation in use, whatever the number of meters.
    for aggregation, keys in keys_by_aggregation.items():
        rows = await repository.aggregate(
            org_id=org_id,
            meter_keys=keys,
            aggregation=aggregation,
            time_from=period_start,
            time_to=period_end,
            boundaries=None,
            subjects=subjects,
            by_subject=True,
            group_by=[],
        )
        for row in rows:
            assert row.subject is not None  # asked by_subject
            data.append(
                SubjectUsage(
                    meter=row.meter_key,
                    aggregation=aggregation,
                    subject=row.subject,
                    value=row.value,
                )
            )
    data.sort(key=lambda usage: (usage.meter, usage.subject))
    return UsageSummary(period_start=period_start, period_end=period_end, data=data)


async def period_usage(
    session: AsyncSession, *, org_id: uuid.UUID, time_from: datetime, time_to: datetime
) -> PeriodUsage:
    """Each meter's aggregation over [time_from, time_to) across subjects, counted as quotas
    count it (api_requests: calls to the operator's API that were not refused): what billing
    invoices for a period."""
    period = Period(start=time_from, end=time_to)
    meters = await list_meters(session, org_id=org_id, include_archived=True)
    data = [
        PeriodMeterUsage(
            meter=meter.key,
            aggregation=meter.aggregation,
            value=await used_in_period(session, org_id=org_id, meter=meter, period=period),
        )
        for meter in meters
    ]
    data.sort(key=lambda usage: usage.meter)
    return PeriodUsage(organization_id=org_id, time_from=time_from, time_to=time_to, data=data)
