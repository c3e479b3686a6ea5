"""Evaluate one entitlement: compare usage with its terms, keep the state, publish changes.

Runs in the evaluator's transaction under an advisory lock per entitlement, so the state row,
the threshold crossings and the outbox events commit together and once.
"""

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.entitlements.catalog import Entitlement, PlanCatalog
from tollgate_metering.entitlements.measure import used_in_period
from tollgate_metering.entitlements.models import EntitlementState
from tollgate_metering.entitlements.repository import EntitlementRepository
from tollgate_metering.entitlements.schemas import EntitlementStatePublic, ThresholdReached
from tollgate_metering.entitlements.status import (
    Period,
    Status,
    billing_period,
    status_of,
    thresholds_reached,
)
from tollgate_metering.entitlements.terms import Mode
from tollgate_metering.events import MeteringEvent, publish


def state_public(state: EntitlementState) -> EntitlementStatePublic:
    return EntitlementStatePublic(
        organization_id=state.org_id,
        meter=state.meter_key,
        limit=state.usage_limit,
        mode=Mode(state.mode),
        grace_percent=state.grace_percent,
        used=state.used,
        status=Status(state.status),
        period_start=state.period_start,
        period_end=state.period_end,
        version=state.version,
    )


async def evaluate(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    meter_key: str,
    catalog: PlanCatalog,
    now: datetime,
) -> None:
    repository = EntitlementRepository(session)
    await repository.lock(org_id=org_id, meter_key=meter_key)
    _, found = await catalog.entitlements(session, org_id=org_id, meter_keys={meter_key})
    entitlement = next((item for item in found if isinstance(item, Entitlement)), None)
    state = await repository.state(org_id=org_id, meter_key=meter_key)
    period = billing_period(now)
    if entitlement is None:
        if state is not None and state.status != Status.REMOVED:
            await _remove(session, state, now=now)
        return
    used = await used_in_period(session, org_id=org_id, meter=entitlement.meter, period=period)
    await _record_thresholds(session, org_id, entitlement, period, used)
    terms = entitlement.terms
    status = status_of(used, terms)
    if state is None:
        state = EntitlementState(
            org_id=org_id,
            meter_key=meter_key,
            period_start=period.start,
            period_end=period.end,
            usage_limit=terms.limit,
            mode=terms.mode,
            grace_percent=terms.grace_percent,
            used=used,
            status=status,
            version=0,
        )
        published = True
    else:
        before = (state.period_start, state.usage_limit, state.mode, state.grace_percent)
        after = (period.start, terms.limit, terms.mode.value, terms.grace_percent)
        # A flagged state is republished as its usage grows, so the gateway's warning header
        # shows a current figure; within the limit only a change of status or terms matters.
        published = (
            before != after
            or state.status != status
            or (status != Status.WITHIN and state.used != used)
        )
        state.period_start, state.period_end = period.start, period.end
        state.usage_limit, state.mode, state.grace_percent = (
            terms.limit,
            terms.mode,
            terms.grace_percent,
        )
        state.used, state.status = used, status
    state.evaluated_at = now
    if published:
        state.version += 1
    await repository.save_state(state)
    if published:
        await _publish_state(session, state, MeteringEvent.ENTITLEMENT_UPDATED)


async def _remove(session: AsyncSession, state: EntitlementState, *, now: datetime) -> None:
    state.status, state.usage_limit = Status.REMOVED, None
    state.version += 1
    state.evaluated_at = now
    await EntitlementRepository(session).save_state(state)
    await _publish_state(session, state, MeteringEvent.ENTITLEMENT_REMOVED)


async def _publish_state(
    session: AsyncSession, state: EntitlementState, event_type: MeteringEvent
) -> None:
    await publish(
        session,
        event_type,
        org_id=state.org_id,
        subject=f"{state.org_id}/{state.meter_key}",
        data=state_public(state).model_dump(mode="json"),
    )


async def _record_thresholds(
    session: AsyncSession,
    org_id: uuid.UUID,
    entitlement: Entitlement,
    period: Period,
    used: Decimal,
) -> None:
    """Each threshold reached fires once per period and limit: the crossing's primary key
    decides, in this transaction, together with its event."""
    terms, meter_key = entitlement.terms, entitlement.meter.key
    repository = EntitlementRepository(session)
    for percent in thresholds_reached(used, terms.limit):
        first = await repository.record_crossing(
            org_id=org_id,
            meter_key=meter_key,
            period_start=period.start,
            usage_limit=terms.limit,
            percent=percent,
            used=used,
        )
        if first:
            reached = ThresholdReached(
                organization_id=org_id,
                meter=meter_key,
                threshold_percent=percent,
                limit=terms.limit,
                used=used,
                mode=terms.mode,
                period_start=period.start,
                period_end=period.end,
            )
            await publish(
                session,
                MeteringEvent.THRESHOLD_REACHED,
                org_id=org_id,
                subject=f"{org_id}/{meter_key}",
                data=reached.model_dump(mode="json"),
            )
