"""The rules for meters: define, list, rename or regroup, archive; the built-in ones included."""

import re
import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.db_types import utcnow
from tollgate_metering.entitlements.changes import mark_changed
from tollgate_metering.meters.built_in import BUILT_IN_METERS
from tollgate_metering.meters.models import Meter
from tollgate_metering.meters.repository import MeterRepository
from tollgate_metering.meters.schemas import (
    METER_KEY_PATTERN,
    Aggregation,
    MeterCreate,
    MeterPublic,
    MeterUpdate,
)
from tollgate_shared.errors import ConflictError, NotFoundError


class MeterNotFoundError(NotFoundError):
    slug, title = "meter-not-found", "Meter not found"


class MeterKeyTakenError(ConflictError):
    slug, title = "meter-key-taken", "Meter key already used"


class BuiltInMeterError(ConflictError):
    slug, title = "built-in-meter", "Built-in meter"


class MeterArchivedError(ConflictError):
    slug, title = "meter-archived", "Meter archived"


def to_public(meter: Meter) -> MeterPublic:
    return MeterPublic(
        key=meter.key,
        name=meter.name,
        aggregation=Aggregation(meter.aggregation),
        value_property=meter.value_property,
        group_by=meter.group_by,
        built_in=False,
        created_at=meter.created_at,
        updated_at=meter.updated_at,
        archived_at=meter.archived_at,
    )


async def create_meter(
    session: AsyncSession, *, org_id: uuid.UUID, data: MeterCreate
) -> MeterPublic:
    if data.key in BUILT_IN_METERS:
        raise MeterKeyTakenError(f"'{data.key}' is a built-in meter of every organisation.")
    now = utcnow()
    meter = Meter(
        org_id=org_id,
        key=data.key,
        name=data.name,
        aggregation=data.aggregation.value,
        value_property=data.value_property,
        group_by=data.group_by,
        created_at=now,
        updated_at=now,
    )
    created = await MeterRepository(session).add_unless_key_taken(meter)
    if created is None:
        raise MeterKeyTakenError(
            f"This organisation already has a meter '{data.key}' (archived ones included: "
            "a key is never reused, so its events always mean one thing)."
        )
    return to_public(created)


async def list_meters(
    session: AsyncSession, *, org_id: uuid.UUID, include_archived: bool
) -> list[MeterPublic]:
    """The built-in meters first, then the organisation's own by key."""
    stored = await MeterRepository(session).list(org_id=org_id, include_archived=include_archived)
    return [*BUILT_IN_METERS.values(), *(to_public(meter) for meter in stored)]


async def get_meter(session: AsyncSession, *, org_id: uuid.UUID, key: str) -> MeterPublic:
    if key in BUILT_IN_METERS:
        return BUILT_IN_METERS[key]
    return to_public(await get_stored_meter(session, org_id=org_id, key=key))


async def get_stored_meter(session: AsyncSession, *, org_id: uuid.UUID, key: str) -> Meter:
    """A meter the organisation defined; 409 for a built-in one, 404 for anything else."""
    if key in BUILT_IN_METERS:
        raise BuiltInMeterError(f"'{key}' is built in and cannot be changed or archived.")
    # A string that cannot be a key is no meter: answered without a query (and never reaches
    # PostgreSQL, which refuses some characters outright).
    meter = (
        await MeterRepository(session).get(org_id=org_id, key=key)
        if re.fullmatch(METER_KEY_PATTERN, key)
        else None
    )
    if meter is None:
        raise MeterNotFoundError(f"No meter '{key}' in this organisation.")
    return meter


async def update_meter(session: AsyncSession, *, meter: Meter, changes: MeterUpdate) -> Meter:
    if meter.archived_at is not None:
        raise MeterArchivedError(f"The meter '{meter.key}' is archived and cannot be changed.")
    wanted = changes.model_dump(exclude_unset=True)
    changed = {name: value for name, value in wanted.items() if getattr(meter, name) != value}
    if not changed:
        return meter
    for name, value in changed.items():
        setattr(meter, name, value)
    meter.updated_at = utcnow()
    await MeterRepository(session).save(meter)
    return meter


async def archive_meter(session: AsyncSession, *, meter: Meter) -> Meter:
    """Archiving twice is harmless: the second call changes nothing."""
    if meter.archived_at is None:
        meter.archived_at = meter.updated_at = utcnow()
        await MeterRepository(session).save(meter)
        # Its entitlement, if it had one, is removed at the next evaluation.
        await mark_changed(session, org_id=meter.org_id, meter_keys=[meter.key])
    return meter


async def meters_by_key(
    session: AsyncSession, *, org_id: uuid.UUID, keys: Collection[str]
) -> dict[str, MeterPublic]:
    """The organisation's meters (archived ones included) and built-in meters with these keys."""
    found = {key: BUILT_IN_METERS[key] for key in keys if key in BUILT_IN_METERS}
    wanted = [key for key in keys if key not in found]
    if wanted:
        stored = await MeterRepository(session).with_keys(org_id=org_id, keys=wanted)
        found.update((meter.key, to_public(meter)) for meter in stored)
    return found
