import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from tollgate_metering.auth import OrgReader
from tollgate_metering.ingestion.schemas import Subject
from tollgate_metering.meters import service as meters
from tollgate_metering.meters.schemas import MeterPublic
from tollgate_metering.usage import service
from tollgate_metering.usage.schemas import (
    MAX_SUBJECTS_PER_QUERY,
    MeterUsage,
    PeriodUsage,
    UsageQuery,
    UsageSummary,
)
from tollgate_metering.usage.windows import MAX_RANGE, Window
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import UnauthorizedError, ValidationProblem
from tollgate_shared.identity import (
    IDENTITY_HEADER,
    Identity,
    TokenVerifier,
    read_identity,
    require_service_identity,
)

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


# A yearly billing period plus slack; longer reads are a mistake, not a period.
MAX_PERIOD = timedelta(days=400)


async def _usage_reading_service(request: Request) -> Identity:
    """A service identity from the gateway, or the billing service's own token (ADR 0018)."""
    token = request.headers.get(IDENTITY_HEADER)
    billing: TokenVerifier | None = request.app.state.billing_identity_verifier
    if token and billing is not None:
        try:
            claims = billing.verify(token)
        except jwt.InvalidTokenError:
            pass  # not billing's: maybe the gateway's
        else:
            try:
                identity = Identity.from_claims(claims)
            except ValueError as error:
                raise UnauthorizedError("The identity token is invalid or expired.") from error
            if identity.principal_type == "service":
                return identity
    return await require_service_identity(await read_identity(request))


UsageReadingService = Annotated[Identity, Depends(_usage_reading_service)]


@router.get("/internal/v1/usage", response_model=PeriodUsage, tags=["internal"])
async def period_usage(
    _: UsageReadingService,
    session: SessionDep,
    organization_id: uuid.UUID,
    time_from: Annotated[AwareDatetime, Query(alias="from")],
    time_to: Annotated[AwareDatetime, Query(alias="to")],
) -> PeriodUsage:
    """Each meter's usage over `[from, to)` (whole minutes) for one organisation, all subjects:
    what billing invoices. api_requests counts calls to the operator's API that were not
    refused, as quotas do. Values are exact decimal strings."""
    time_from, time_to = time_from.astimezone(UTC), time_to.astimezone(UTC)
    errors = [
        _error(name, "must be on a whole minute", "whole_minute")
        for name, moment in (("from", time_from), ("to", time_to))
        if not _whole_minute(moment)
    ]
    if time_to <= time_from:
        errors.append(_error("to", "must be after from", "range"))
    elif time_to - time_from > MAX_PERIOD:
        errors.append(_error("to", "at most 400 days after from", "range_too_large"))
    if errors:
        raise ValidationProblem("The usage query is not valid.", errors=errors)
    return await service.period_usage(
        session, org_id=organization_id, time_from=time_from, time_to=time_to
    )
