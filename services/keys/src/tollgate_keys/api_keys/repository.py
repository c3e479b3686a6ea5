"""Every query on API keys and their secrets."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_keys.api_keys.models import ApiKey, ApiKeySecret
from tollgate_keys.api_keys.schemas import KeyUsage
from tollgate_keys.organizations.models import Organization
from tollgate_shared.pagination import PageParams


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey, secret: ApiKeySecret) -> None:
        self.session.add(key)
        await self.session.flush()
        self.session.add(secret)
        await self.session.flush()

    async def add_secret(self, secret: ApiKeySecret) -> None:
        self.session.add(secret)
        await self.session.flush()

    async def get_in_org(self, *, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id)
        )
        return result.scalars().first()

    async def list_page(self, *, org_id: uuid.UUID, page: PageParams) -> Sequence[ApiKey]:
        query = select(ApiKey).where(ApiKey.org_id == org_id)
        if page.cursor:
            query = query.where(
                sa.tuple_(col(ApiKey.created_at), col(ApiKey.id))
                < sa.tuple_(sa.literal(page.cursor.created_at), sa.literal(page.cursor.id))
            )
        query = query.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
        result = await self.session.execute(query.limit(page.limit + 1))
        return result.scalars().all()

    async def find_by_secret_hash(
        self, secret_hash: str
    ) -> tuple[ApiKey, ApiKeySecret, Organization] | None:
        result = await self.session.execute(
            select(ApiKey, ApiKeySecret, Organization)
            .join(ApiKeySecret, col(ApiKeySecret.key_id) == col(ApiKey.id))
            .join(Organization, col(Organization.id) == col(ApiKey.org_id))
            .where(ApiKeySecret.secret_hash == secret_hash)
        )
        row = result.first()
        return (row[0], row[1], row[2]) if row else None

    async def cap_secret_expiry(self, *, key_id: uuid.UUID, expires_at: datetime) -> None:
        """Give every current secret of the key an expiry no later than expires_at."""
        await self.session.execute(
            sa.update(ApiKeySecret)
            .where(
                col(ApiKeySecret.key_id) == key_id,
                sa.or_(
                    col(ApiKeySecret.expires_at).is_(None),
                    col(ApiKeySecret.expires_at) > expires_at,
                ),
            )
            .values(expires_at=expires_at)
        )

    async def record_usage(self, usage: Sequence[KeyUsage]) -> int:
        """One statement for the whole batch; last_used_at only moves forward."""
        if not usage:
            return 0
        values = sa.values(
            sa.column("key_id", sa.Uuid),
            sa.column("last_used_at", sa.DateTime(timezone=True)),
            sa.column("requests", sa.BigInteger),
            name="usage",
        ).data([(item.key_id, item.last_used_at, item.requests) for item in usage])
        table = ApiKey.__table__  # type: ignore[attr-defined]
        result = await self.session.execute(
            sa.update(table)
            .where(table.c.id == values.c.key_id)
            .values(
                last_used_at=sa.func.greatest(
                    sa.func.coalesce(table.c.last_used_at, values.c.last_used_at),
                    values.c.last_used_at,
                ),
                request_count=table.c.request_count + values.c.requests,
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def keys_past_expiry(self, *, now: datetime, limit: int) -> Sequence[ApiKey]:
        result = await self.session.execute(
            select(ApiKey)
            .where(
                col(ApiKey.expires_at) <= now,
                col(ApiKey.expiry_announced_at).is_(None),
                col(ApiKey.revoked_at).is_(None),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return result.scalars().all()

    async def secrets_past_expiry(
        self, *, now: datetime, limit: int
    ) -> Sequence[tuple[ApiKeySecret, ApiKey]]:
        result = await self.session.execute(
            select(ApiKeySecret, ApiKey)
            .join(ApiKey, col(ApiKey.id) == col(ApiKeySecret.key_id))
            .where(
                col(ApiKeySecret.expires_at) <= now,
                col(ApiKeySecret.expiry_announced_at).is_(None),
                col(ApiKey.revoked_at).is_(None),
            )
            .limit(limit)
            .with_for_update(of=ApiKeySecret, skip_locked=True)
        )
        return [(row[0], row[1]) for row in result.all()]
