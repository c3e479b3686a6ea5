"""The rules for API keys: issue, list, change, revoke, rotate, verify, expire."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_keys.api_keys.models import ApiKey, ApiKeySecret
from tollgate_keys.api_keys.repository import ApiKeyRepository
from tollgate_keys.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyPublic,
    ApiKeyUpdate,
    KeyStatus,
    KeyUsage,
    VerifiedKey,
)
from tollgate_keys.events import KeysEvent, publish
from tollgate_shared import api_key_format
from tollgate_shared.errors import ConflictError, NotFoundError
from tollgate_shared.pagination import Page, PageParams, split_page


class KeyNotFoundError(NotFoundError):
    slug, title = "key-not-found", "API key not found"


class KeyRevokedError(ConflictError):
    slug, title = "key-revoked", "API key revoked"


class KeyExpiredError(ConflictError):
    slug, title = "key-expired", "API key expired"


class InvalidKeyError(NotFoundError):
    """Internal: the secret is unknown, revoked or expired (the gateway answers 401)."""

    slug, title = "invalid-key", "Invalid API key"


def _now() -> datetime:
    return datetime.now(UTC)


def status_of(key: ApiKey, now: datetime | None = None) -> KeyStatus:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (now or _now()):
        return "expired"
    return "active"


def to_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=key.id,
        name=key.name,
        environment=key.environment,
        scopes=key.scopes,
        masked_key=f"{key.display_prefix}…{key.last_four}",
        rate_limit=key.rate_limit,
        status=status_of(key),
        created_at=key.created_at,
        updated_at=key.updated_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        request_count=key.request_count,
    )


def _event_data(key: ApiKey, **extra: Any) -> dict[str, Any]:
    return {
        "key_id": str(key.id),
        "organization_id": str(key.org_id),
        "name": key.name,
        "environment": key.environment,
        "scopes": key.scopes,
        "rate_limit": key.rate_limit,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        **extra,
    }


def _new_secret(key: ApiKey, environment: str) -> tuple[ApiKeySecret, str]:
    secret = api_key_format.generate_key("test" if environment == "test" else "live")
    key.display_prefix = api_key_format.display_prefix(secret)
    key.last_four = api_key_format.last_four(secret)
    return ApiKeySecret(key_id=key.id, secret_hash=api_key_format.hash_key(secret)), secret


async def create_key(
    session: AsyncSession, *, org_id: uuid.UUID, created_by: str | None, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """Issue a key; the returned full secret is never stored and cannot be shown again."""
    key = ApiKey(
        org_id=org_id,
        name=data.name,
        environment=data.environment,
        scopes=list(data.scopes),
        rate_limit=data.rate_limit.model_dump(exclude_none=True) if data.rate_limit else None,
        expires_at=data.expires_at,
        created_by=created_by,
        display_prefix="",
        last_four="",
    )
    secret_row, secret = _new_secret(key, data.environment)
    await ApiKeyRepository(session).add(key, secret_row)
    await publish(session, KeysEvent.KEY_CREATED, org_id=org_id, data=_event_data(key))
    return key, secret


async def get_key(session: AsyncSession, *, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = await ApiKeyRepository(session).get_in_org(org_id=org_id, key_id=key_id)
    if key is None:
        raise KeyNotFoundError(f"No API key {key_id} in this organisation.")
    return key


async def list_keys(
    session: AsyncSession, *, org_id: uuid.UUID, page: PageParams
) -> Page[ApiKeyPublic]:
    rows = await ApiKeyRepository(session).list_page(org_id=org_id, page=page)
    keys, next_cursor = split_page(rows, page, lambda key: (key.created_at, key.id))
    return Page(items=[to_public(key) for key in keys], next_cursor=next_cursor)


async def update_key(session: AsyncSession, *, key: ApiKey, changes: ApiKeyUpdate) -> ApiKey:
    """Apply the fields sent; values equal to the current ones change nothing and publish
    nothing."""
    if key.revoked_at is not None:
        raise KeyRevokedError("A revoked key cannot be changed.")
    wanted = changes.model_dump(exclude_unset=True)
    if "rate_limit" in wanted:
        # Stored like at creation: only the windows that are set.
        wanted["rate_limit"] = (
            changes.rate_limit.model_dump(exclude_none=True) if changes.rate_limit else None
        )
    changed = sorted(name for name, value in wanted.items() if getattr(key, name) != value)
    if not changed:
        return key
    for name in changed:
        setattr(key, name, wanted[name])
    if "expires_at" in changed:
        # A new expiry is a new moment to announce when it passes.
        key.expiry_announced_at = None
    key.updated_at = _now()
    session.add(key)
    await session.flush()
    await publish(
        session,
        KeysEvent.KEY_UPDATED,
        org_id=key.org_id,
        data=_event_data(key, changed=changed),
    )
    return key


async def revoke_key(session: AsyncSession, *, key: ApiKey) -> ApiKey:
    """Revoking twice is harmless: the second call changes nothing and publishes nothing."""
    if key.revoked_at is not None:
        return key
    key.revoked_at = key.updated_at = _now()
    session.add(key)
    await session.flush()
    await publish(session, KeysEvent.KEY_REVOKED, org_id=key.org_id, data=_event_data(key))
    return key


async def rotate_key(
    session: AsyncSession, *, key: ApiKey, grace: timedelta
) -> tuple[ApiKey, str, datetime]:
    """New secret now; the previous ones keep working until now + grace."""
    if key.revoked_at is not None:
        raise KeyRevokedError("A revoked key cannot be rotated.")
    now = _now()
    if status_of(key, now) == "expired":
        # The new secret would be refused like the old one: the key's own expiry has passed.
        raise KeyExpiredError(
            "An expired key cannot be rotated; give it a new expires_at first, or create a key."
        )
    previous_expires_at = now + grace
    repository = ApiKeyRepository(session)
    await repository.cap_secret_expiry(key_id=key.id, expires_at=previous_expires_at)
    secret_row, secret = _new_secret(key, key.environment)
    await repository.add_secret(secret_row)
    key.updated_at = now
    session.add(key)
    await session.flush()
    await publish(
        session,
        KeysEvent.KEY_ROTATED,
        org_id=key.org_id,
        data=_event_data(key, previous_secret_expires_at=previous_expires_at.isoformat()),
    )
    return key, secret, previous_expires_at


async def verify_secret_hash(session: AsyncSession, *, secret_hash: str) -> VerifiedKey:
    found = await ApiKeyRepository(session).find_by_secret_hash(secret_hash)
    if found is None:
        raise InvalidKeyError("Unknown key.", reason="unknown")
    key, secret, organization = found
    now = _now()
    if key.revoked_at is not None:
        raise InvalidKeyError("The key was revoked.", reason="revoked")
    ends = [moment for moment in (key.expires_at, secret.expires_at) if moment is not None]
    expires_at = min(ends) if ends else None
    if expires_at is not None and expires_at <= now:
        raise InvalidKeyError("The key has expired.", reason="expired")
    return VerifiedKey(
        key_id=key.id,
        org_id=key.org_id,
        name=key.name,
        environment=key.environment,
        scopes=key.scopes,
        rate_limit=key.rate_limit,
        plan=organization.plan,
        suspended=organization.suspended,
        expires_at=expires_at,
    )


async def record_usage(session: AsyncSession, *, usage: Sequence[KeyUsage]) -> int:
    """Add the request counts and move last_used_at forward; returns how many keys exist.

    A batch may name a key more than once (several gateway flushes): an UPDATE ... FROM a list
    with duplicates would apply only one of them, so they are combined first.
    """
    combined: dict[uuid.UUID, KeyUsage] = {}
    for item in usage:
        seen = combined.get(item.key_id)
        combined[item.key_id] = (
            item
            if seen is None
            # model_construct: the sum may exceed what one report may claim, and that is fine.
            else KeyUsage.model_construct(
                key_id=item.key_id,
                last_used_at=max(seen.last_used_at, item.last_used_at),
                requests=seen.requests + item.requests,
            )
        )
    return await ApiKeyRepository(session).record_usage(list(combined.values()))


async def announce_expiries(session: AsyncSession, *, batch_size: int = 500) -> int:
    """Publish key.expired once for each key or rotated-out secret whose time has come."""
    repository, now = ApiKeyRepository(session), _now()
    announced = 0
    for key in await repository.keys_past_expiry(now=now, limit=batch_size):
        key.expiry_announced_at = now
        session.add(key)
        await publish(
            session,
            KeysEvent.KEY_EXPIRED,
            org_id=key.org_id,
            data=_event_data(key, reason="key_expired"),
        )
        announced += 1
    for secret, key in await repository.secrets_past_expiry(now=now, limit=batch_size):
        secret.expiry_announced_at = now
        session.add(secret)
        await publish(
            session,
            KeysEvent.KEY_EXPIRED,
            org_id=key.org_id,
            data=_event_data(key, reason="previous_secret_expired", secret_id=str(secret.id)),
        )
        announced += 1
    await session.flush()
    return announced
