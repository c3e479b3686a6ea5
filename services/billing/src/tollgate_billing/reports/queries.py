"""The aggregates behind the operator's reports: one SQL statement each, over every customer."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.pagination import Cursor

_SUBSCRIPTIONS_BY_PLAN = sa.text(
    """
    SELECT s.plan_key, s.interval, s.status, p.currency, p.monthly_price, p.yearly_price,
           count(*) AS subscriptions
    FROM billing.subscriptions s JOIN billing.plans p ON p.key = s.plan_key
    GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3
    """
)

# Invoiced by the month of finalization (void ones left out: they are owed by no one), collected
# by the month of payment. Months in UTC.
_REVENUE_BY_MONTH = sa.text(
    """
    WITH invoiced AS (
        SELECT date_trunc('month', finalized_at AT TIME ZONE 'UTC')::date AS month, currency,
               sum(total) AS invoiced, count(*) AS invoices
        FROM billing.invoices
        WHERE finalized_at >= :since AND finalized_at < :until AND state <> 'void'
        GROUP BY 1, 2
    ), collected AS (
        SELECT date_trunc('month', paid_at AT TIME ZONE 'UTC')::date AS month, currency,
               sum(total) AS collected, count(*) AS paid_invoices
        FROM billing.invoices
        WHERE paid_at >= :since AND paid_at < :until AND state = 'paid'
        GROUP BY 1, 2
    )
    SELECT month, currency, coalesce(invoiced, 0) AS invoiced, coalesce(invoices, 0) AS invoices,
           coalesce(collected, 0) AS collected, coalesce(paid_invoices, 0) AS paid_invoices
    FROM invoiced FULL JOIN collected USING (month, currency)
    ORDER BY month, currency
    """
)

_INVOICES_BY_STATE = sa.text(
    """
    SELECT state, currency, count(*) AS invoices, sum(total) AS total
    FROM billing.invoices WHERE state <> 'draft'
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)


async def subscriptions_by_plan(session: AsyncSession) -> Sequence[Any]:
    return (await session.execute(_SUBSCRIPTIONS_BY_PLAN)).all()


async def revenue_by_month(
    session: AsyncSession, *, since: datetime, until: datetime
) -> Sequence[Any]:
    return (await session.execute(_REVENUE_BY_MONTH, {"since": since, "until": until})).all()


async def invoices_by_state(session: AsyncSession) -> Sequence[Any]:
    return (await session.execute(_INVOICES_BY_STATE)).all()


async def issued_invoices(
    session: AsyncSession, *, state: str | None, limit: int, before: Cursor | None
) -> Sequence[Any]:
    """Issued invoices of every organisation, the latest finalized first."""
    query = """
        SELECT id, number, org_id, state, currency, total, period_start,
               coalesce(ended_at, period_end) AS period_end, finalized_at
        FROM billing.invoices
        WHERE state <> 'draft' AND (CAST(:state AS text) IS NULL OR state = :state)
    """
    params: dict[str, Any] = {"state": state, "limit": limit}
    if before is not None:
        query += " AND (finalized_at, id) < (:before_at, :before_id)"
        params.update(before_at=before.created_at, before_id=before.id)
    query += " ORDER BY finalized_at DESC, id DESC LIMIT :limit"
    return (await session.execute(sa.text(query), params)).all()


async def customers(
    session: AsyncSession,
    *,
    plan: str | None,
    status: str | None,
    limit: int,
    before: Cursor | None,
) -> Sequence[Any]:
    """Customers with their subscription, the newest first."""
    query = """
        SELECT c.id, c.org_id, c.name, s.plan_key, s.interval, s.status,
               s.current_period_end, c.created_at
        FROM billing.customers c JOIN billing.subscriptions s ON s.customer_id = c.id
        WHERE (CAST(:plan AS text) IS NULL OR s.plan_key = :plan)
          AND (CAST(:status AS text) IS NULL OR s.status = :status)
    """
    params: dict[str, Any] = {"plan": plan, "status": status, "limit": limit}
    if before is not None:
        query += " AND (c.created_at, c.id) < (:before_at, :before_id)"
        params.update(before_at=before.created_at, before_id=before.id)
    query += " ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"
    return (await session.execute(sa.text(query), params)).all()
