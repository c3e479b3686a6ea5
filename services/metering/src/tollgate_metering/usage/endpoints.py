from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from tollgate_metering.auth import OrgReader
from tollgate_metering.ingestion.schemas import Subject
from tollgate_metering.meters import service as meters
from tollgate_metering.meters.schemas import MeterPublic
from tollgate_metering.usage import service
from tollgate_metering.usage.schemas import (
    MAX_SUBJECTS_PER_QUERY,
    MeterUsage,
    UsageQuery,
    UsageSummary,
)
from tollgate_metering.usage.windows import MAX_RANGE, Window
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import ValidationProblem

router = APIRouter(tags=["usage"])

Subjects = Annotated[list[Subject] | None, Query(max_length=MAX_SUBJECTS_PER_QUERY)]


async def _readable_meter(key: str, identity: OrgReader, session: SessionDep) -> MeterPublic:
    """The organisation's meter (built-in ones included) for any member; others are a 404."""
    assert identity.org_id is not None
    return await meters.get_meter(session, org_id=identity.org_id, key=key)


ReadableMeter = Annotated[MeterPublic, Depends(_readable_meter)]


def _error(name: str, message: str, type_: str) -> dict[str, Any]:
    return {"loc": ["query", name], "message": message, "type": type_}


def _time_zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _whole_minute(moment: datetime) -> bool:
    return moment.second == 0 and moment.microsecond == 0


def _usage_query(
    meter: ReadableMeter,
    time_from: Annotated[AwareDatetime, Query(alias="from")],
    time_to: Annotated[AwareDatetime, Query(alias="to")],
    window: Window = Window.DAY,
    tz: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
    subject: Subjects = None,
    group_by: Annotated[list[str] | None, Query(max_length=10)] = None,
) -> UsageQuery:
    """Check the query against the meter, reporting every problem at once."""
    time_from, time_to = time_from.astimezone(UTC), time_to.astimezone(UTC)
    errors = []
    for name, moment in (("from", time_from), ("to", time_to)):
        # Rollups are per minute: a part of a minute cannot be answered exactly.
        if not _whole_minute(moment):
            errors.append(_error(name, "must be on a whole minute", "whole_minute"))
    if time_to <= time_from:
        errors.append(_error("to", "must be after from", "range"))
    elif time_to - time_from > MAX_RANGE[window]:
        errors.append(
            _error(
                "to",
                f"{window} windows cover at most {MAX_RANGE[window].days} day(s) per query",
                "range_too_large",
            )
        )
    zone = _time_zone(tz)
    if zone is None:
        errors.append(_error("tz", "must be an IANA time zone name", "unknown_time_zone"))
    group_by = list(dict.fromkeys(group_by or []))
    for name in group_by:
        if name not in meter.group_by:
            errors.append(
                _error(
                    "group_by",
                    f"'{name}' is not in the group_by of meter '{meter.key}'",
                    "unknown_group_by",
                )
            )
    if errors or zone is None:
        raise ValidationProblem("The usage query is not valid.", errors=errors)
    return UsageQuery(
        time_from=time_from,
        time_to=time_to,
        window=window,
        zone=zone,
        subjects=list(dict.fromkeys(subject or [])),
        group_by=group_by,
    )


@router.get("/v1/meters/{key}/usage", response_model=MeterUsage)
async def meter_usage(
    meter: ReadableMeter,
    query: Annotated[UsageQuery, Depends(_usage_query)],
    identity: OrgReader,
    session: SessionDep,
) -> MeterUsage:
    """The meter's usage in windows of `[from, to)`, aggregated as the meter says.

    Windows are aligned in `tz`; the first and last are cut at `from` and `to`. Windows without
    usage are left out. With `subject` the rows are per subject; with `group_by`, per value of
    those properties.
    """
    assert identity.org_id is not None
    return await service.meter_usage(session, org_id=identity.org_id, meter=meter, query=query)


@router.get("/v1/usage", response_model=UsageSummary)
async def usage_summary(
    identity: OrgReader, session: SessionDep, subject: Subjects = None
) -> UsageSummary:
    """This calendar month's usage (UTC) per meter and subject, optionally of some subjects."""
    assert identity.org_id is not None
    return await service.usage_summary(
        session, org_id=identity.org_id, subjects=list(dict.fromkeys(subject or []))
    )
