"""The rules for entitlements: what an organisation is allowed and has used, and overrides."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.db_types import utcnow
from tollgate_metering.entitlements.catalog import Entitlement, PlanCatalog, Unlimited
from tollgate_metering.entitlements.changes import mark_changed
from tollgate_metering.entitlements.evaluation import state_public
from tollgate_metering.entitlements.measure import used_in_period
from tollgate_metering.entitlements.models import EntitlementOverride
from tollgate_metering.entitlements.repository import EntitlementRepository
from tollgate_metering.entitlements.schemas import (
    EntitlementList,
    EntitlementStates,
    EntitlementView,
    OverrideChange,
)
from tollgate_metering.entitlements.status import Period, Status, billing_period, status_of
from tollgate_metering.meters import service as meters
from tollgate_shared.errors import NotFoundError


class OverrideNotFoundError(NotFoundError):
    pass


async def list_entitlements(
    session: AsyncSession, *, org_id: uuid.UUID, catalog: PlanCatalog, now: datetime | None = None
) -> EntitlementList:
    """Every entitlement of the organisation with its usage so far this period (read live
    from the rollups, not from the last evaluation)."""
    period = billing_period(now or utcnow())
    plan, found = await catalog.entitlements(session, org_id=org_id)
    views = [await _view(session, org_id, item, period) for item in found]
    return EntitlementList(plan=plan, period_start=period.start, period_end=period.end, data=views)


async def _view(
    session: AsyncSession, org_id: uuid.UUID, item: Entitlement | Unlimited, period: Period
) -> EntitlementView:
    used = await used_in_period(session, org_id=org_id, meter=item.meter, period=period)
    common = {"meter": item.meter.key, "used": used, "period_start": period.start}
    if isinstance(item, Unlimited):
        return EntitlementView(
            **common,
            limit=None,
            mode=item.override.mode,
            grace_percent=item.override.grace_percent,
            source="override",
            remaining=None,
            status=Status.WITHIN,
            resets_at=period.end,
        )
    terms = item.terms
    return EntitlementView(
        **common,
        limit=terms.limit,
        mode=terms.mode,
        grace_percent=terms.grace_percent,
        source=item.source,
        remaining=max(terms.limit - used, 0),
        status=status_of(used, terms),
        resets_at=period.end,
    )


async def set_override(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    meter_key: str,
    change: OverrideChange,
) -> None:
    """Replace the plan's terms for this organisation's meter (404 for a meter it does not
    have); the new state reaches the gateway with the next evaluation."""
    meter = await meters.get_meter(session, org_id=org_id, key=meter_key)
    if meter.archived_at is not None:
        raise meters.MeterArchivedError(f"The meter '{meter_key}' is archived: it takes no usage.")
    repository = EntitlementRepository(session)
    override = await repository.override(org_id=org_id, meter_key=meter_key)
    if override is None:
        override = EntitlementOverride(
            org_id=org_id, meter_key=meter_key, mode=change.mode, grace_percent=0
        )
    override.usage_limit, override.mode = change.limit, change.mode
    override.grace_percent, override.updated_at = change.grace_percent, utcnow()
    await repository.save_override(override)
    await mark_changed(session, org_id=org_id, meter_keys=[meter_key])


async def remove_override(session: AsyncSession, *, org_id: uuid.UUID, meter_key: str) -> None:
    """Back to the plan's terms."""
    repository = EntitlementRepository(session)
    override = await repository.override(org_id=org_id, meter_key=meter_key)
    if override is None:
        raise OverrideNotFoundError(
            f"No override for the meter '{meter_key}' of this organisation."
        )
    await repository.delete_override(override)
    await mark_changed(session, org_id=org_id, meter_keys=[meter_key])


async def flagged_states(session: AsyncSession) -> EntitlementStates:
    states = await EntitlementRepository(session).flagged_states(now=utcnow())
    return EntitlementStates(items=[state_public(state) for state in states])
