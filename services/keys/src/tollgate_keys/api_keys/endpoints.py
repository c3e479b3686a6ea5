import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from tollgate_keys.api_keys import service
from tollgate_keys.api_keys.models import ApiKey
from tollgate_keys.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeyRotate,
    ApiKeyRotated,
    ApiKeyUpdate,
)
from tollgate_keys.auth import OrgAdmin, OrgReader
from tollgate_keys.config import KeysSettings
from tollgate_shared.database import SessionDep
from tollgate_shared.identity import Identity
from tollgate_shared.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/v1/keys", tags=["api keys"])


def principal_label(identity: Identity) -> str:
    return f"{identity.principal_type}:{identity.principal_id}"


async def _current_key(key_id: uuid.UUID, identity: OrgReader, session: SessionDep) -> ApiKey:
    """The key with this id in the caller's organisation; any other id is a 404."""
    assert identity.org_id is not None
    return await service.get_key(session, org_id=identity.org_id, key_id=key_id)


CurrentKey = Annotated[ApiKey, Depends(_current_key)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, identity: OrgAdmin, session: SessionDep) -> ApiKeyCreated:
    """Issue a key. The full key is in this response only."""
    assert identity.org_id is not None
    key, secret = await service.create_key(
        session, org_id=identity.org_id, created_by=principal_label(identity), data=body
    )
    return ApiKeyCreated(**service.to_public(key).model_dump(), key=secret)


@router.get("", response_model=Page[ApiKeyPublic])
async def list_keys(
    identity: OrgReader,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ApiKeyPublic]:
    """Keys of the organisation, newest first, masked."""
    assert identity.org_id is not None
    return await service.list_keys(session, org_id=identity.org_id, page=page)


@router.get("/{key_id}", response_model=ApiKeyPublic)
async def get_key(key: CurrentKey) -> ApiKeyPublic:
    return service.to_public(key)


@router.patch("/{key_id}", response_model=ApiKeyPublic)
async def update_key(
    body: ApiKeyUpdate, key: CurrentKey, _admin: OrgAdmin, session: SessionDep
) -> ApiKeyPublic:
    return service.to_public(await service.update_key(session, key=key, changes=body))


@router.delete("/{key_id}", response_model=ApiKeyPublic)
async def revoke_key(key: CurrentKey, _admin: OrgAdmin, session: SessionDep) -> ApiKeyPublic:
    """Revoke now: every gateway replica refuses the key within a fraction of a second."""
    return service.to_public(await service.revoke_key(session, key=key))


@router.post("/{key_id}/rotate", response_model=ApiKeyRotated)
async def rotate_key(
    key: CurrentKey,
    _admin: OrgAdmin,
    session: SessionDep,
    request: Request,
    body: ApiKeyRotate | None = None,
) -> ApiKeyRotated:
    """New secret now; the previous one keeps working for the grace period."""
    settings: KeysSettings = request.app.state.settings
    grace_seconds = (
        body.grace_seconds
        if body and body.grace_seconds is not None
        else settings.rotation_grace_seconds
    )
    key, secret, previous_expires_at = await service.rotate_key(
        session, key=key, grace=timedelta(seconds=grace_seconds)
    )
    return ApiKeyRotated(
        **service.to_public(key).model_dump(),
        key=secret,
        previous_secret_expires_at=previous_expires_at,
    )
