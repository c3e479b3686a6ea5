from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from tollgate_metering.auth import OrgAdmin, OrgReader
from tollgate_metering.meters import service
from tollgate_metering.meters.models import Meter
from tollgate_metering.meters.schemas import MeterCreate, MeterPublic, MeterUpdate
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/meters", tags=["meters"])


async def _stored_meter(key: str, identity: OrgAdmin, session: SessionDep) -> Meter:
    """The organisation's own meter with this key, for an admin; any other key is a 404."""
    assert identity.org_id is not None
    return await service.get_stored_meter(session, org_id=identity.org_id, key=key)


StoredMeter = Annotated[Meter, Depends(_stored_meter)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MeterPublic)
async def create_meter(body: MeterCreate, identity: OrgAdmin, session: SessionDep) -> MeterPublic:
    """Define a meter: events whose type is its key are measured by it."""
    assert identity.org_id is not None
    return await service.create_meter(session, org_id=identity.org_id, data=body)


@router.get("", response_model=list[MeterPublic])
async def list_meters(
    identity: OrgReader,
    session: SessionDep,
    include_archived: Annotated[bool, Query()] = False,
) -> list[MeterPublic]:
    """Built-in meters first, then the organisation's own, by key."""
    assert identity.org_id is not None
    return await service.list_meters(
        session, org_id=identity.org_id, include_archived=include_archived
    )


@router.get("/{key}", response_model=MeterPublic)
async def get_meter(key: str, identity: OrgReader, session: SessionDep) -> MeterPublic:
    assert identity.org_id is not None
    return await service.get_meter(session, org_id=identity.org_id, key=key)


@router.patch("/{key}", response_model=MeterPublic)
async def update_meter(body: MeterUpdate, meter: StoredMeter, session: SessionDep) -> MeterPublic:
    """Change name or group_by. Aggregation and value_property are fixed for the meter's life."""
    return service.to_public(await service.update_meter(session, meter=meter, changes=body))


@router.delete("/{key}", response_model=MeterPublic)
async def archive_meter(meter: StoredMeter, session: SessionDep) -> MeterPublic:
    """Archive: the meter takes no new events; its stored events stay, and its key stays
    taken."""
    return service.to_public(await service.archive_meter(session, meter=meter))
