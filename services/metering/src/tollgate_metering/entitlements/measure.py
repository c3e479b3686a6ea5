"""How much of a meter an organisation used in a billing period, read from the rollups."""

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.entitlements.status import Period
from tollgate_metering.meters.built_in import API_REQUESTS
from tollgate_metering.meters.schemas import MeterPublic
from tollgate_metering.usage.repository import UsageRepository

# api_requests quotas count calls to the operator's API (route meter api_requests), not to
# Tollgate's own endpoints (usage, keys...: meter null), which stay free and always reachable.
_COUNTED: dict[str, dict[str, Any]] = {API_REQUESTS: {"meter": API_REQUESTS}}
# Requests answered 429 (rate limit or quota, at the gateway or upstream) or 402 (the org is
# suspended for non-payment) were refused, not served: they use up no quota and are never billed,
# or an org over its cap would keep climbing while it is refused.
_NOT_COUNTED: dict[str, list[dict[str, Any]]] = {API_REQUESTS: [{"status": 429}, {"status": 402}]}


async def used_in_period(
    session: AsyncSession, *, org_id: uuid.UUID, meter: MeterPublic, period: Period
) -> Decimal:
    """The meter's aggregation over the period, across all subjects (the org is the customer)."""
    rows = await UsageRepository(session).aggregate(
        org_id=org_id,
        meter_keys=[meter.key],
        aggregation=meter.aggregation,
        time_from=period.start,
        time_to=period.end,
        boundaries=None,
        subjects=[],
        by_subject=False,
        group_by=[],
        required_group=_COUNTED.get(meter.key),
        excluded_groups=_NOT_COUNTED.get(meter.key, []),
    )
    return rows[0].value if rows else Decimal(0)
