"""Marks of what needs evaluating again, written in the transaction of the change.

usage_changes is append-only (migration 0003): writers only insert, never wait on the
evaluator, and a mark committed after the evaluator took its batch waits for the next round.
"""

import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.meters.built_in import BUILT_IN_METERS

_MARK = sa.text(
    "INSERT INTO metering.usage_changes (org_id, meter_key)"
    " SELECT :org_id, unnest(CAST(:meter_keys AS text[]))"
)

# The (org, meter) pairs of the events an insert just stored: rollups/repository.py stages them
# in the transaction's temporary table measured_usage_events.
_MARK_MEASURED = sa.text(
    "INSERT INTO metering.usage_changes (org_id, meter_key)"
    " SELECT DISTINCT org_id, meter_key FROM measured_usage_events"
)

# Every meter that can carry an entitlement of the organisation, after its plan changed.
_MARK_ALL = sa.text(
    """
    INSERT INTO metering.usage_changes (org_id, meter_key)
    SELECT :org_id, key FROM metering.meters WHERE org_id = :org_id AND archived_at IS NULL
    UNION SELECT :org_id, unnest(CAST(:built_in_keys AS text[]))
    UNION SELECT org_id, meter_key FROM metering.entitlement_states WHERE org_id = :org_id
    """
)

_TAKE = sa.text(
    """
    DELETE FROM metering.usage_changes
    WHERE id IN (
        SELECT id FROM metering.usage_changes ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    RETURNING org_id, meter_key
    """
)

# Every other committed mark of the pairs taken: one evaluation covers them all, so a busy
# organisation's marks (one per stored batch) cannot pile up faster than rounds take them.
# Marks another evaluator holds are skipped, never waited for (no deadlock between replicas).
_TAKE_SAME_PAIRS = sa.text(
    """
    DELETE FROM metering.usage_changes
    WHERE id IN (
        SELECT id FROM metering.usage_changes
        WHERE (org_id, meter_key) IN (
            SELECT * FROM unnest(CAST(:org_ids AS uuid[]), CAST(:meter_keys AS text[]))
        )
        FOR UPDATE SKIP LOCKED
    )
    """
)


async def mark_changed(
    session: AsyncSession, *, org_id: uuid.UUID, meter_keys: Collection[str]
) -> None:
    if meter_keys:
        await session.execute(_MARK, {"org_id": org_id, "meter_keys": sorted(meter_keys)})


async def mark_measured(session: AsyncSession) -> None:
    await session.execute(_MARK_MEASURED)


async def mark_plan_changed(session: AsyncSession, *, org_id: uuid.UUID) -> None:
    await session.execute(_MARK_ALL, {"org_id": org_id, "built_in_keys": list(BUILT_IN_METERS)})


async def take_changes(session: AsyncSession, *, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Up to limit marks and every other mark of the same (org, meter) pairs, deleted in the
    caller's transaction (back if it rolls back), as distinct pairs in a stable order. A mark
    committed after this statement stays for the next round: its usage may not be visible to
    this evaluation. Replicas skip each other's marks."""
    rows = (await session.execute(_TAKE, {"limit": limit})).all()
    pairs = sorted({(row.org_id, row.meter_key) for row in rows})
    if pairs:
        await session.execute(
            _TAKE_SAME_PAIRS,
            {"org_ids": [pair[0] for pair in pairs], "meter_keys": [pair[1] for pair in pairs]},
        )
    return pairs
