"""Which terms apply to an organisation's meter: an operator's override, else its plan's."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.entitlements.models import EntitlementOverride
from tollgate_metering.entitlements.repository import EntitlementRepository
from tollgate_metering.entitlements.schemas import Source
from tollgate_metering.entitlements.terms import EntitlementTerms, Mode, PlanEntitlements
from tollgate_metering.meters.schemas import MeterPublic
from tollgate_metering.meters.service import meters_by_key
from tollgate_metering.organizations.repository import OrganizationPlanRepository


@dataclass(frozen=True)
class Entitlement:
    meter: MeterPublic
    terms: EntitlementTerms
    source: Source


@dataclass(frozen=True)
class Unlimited:
    """An override that lifts the plan's limit: no quota, shown so operators see it."""

    meter: MeterPublic
    override: EntitlementOverride


@dataclass(frozen=True)
class PlanCatalog:
    """The plans' default entitlements (settings), and the plan of an org nobody told us about."""

    plans: PlanEntitlements
    unknown_plan: str

    async def plan_of(self, session: AsyncSession, org_id: uuid.UUID) -> str:
        plan = await OrganizationPlanRepository(session).plan_of(org_id)
        return plan if plan in self.plans else self.unknown_plan

    async def entitlements(
        self, session: AsyncSession, *, org_id: uuid.UUID, meter_keys: set[str] | None = None
    ) -> tuple[str, list[Entitlement | Unlimited]]:
        """The org's plan and its entitlements (all of them, or those of meter_keys), by meter
        key; meters that do not exist or are archived have none."""
        plan = await self.plan_of(session, org_id)
        defaults = self.plans[plan]
        overrides = {
            override.meter_key: override
            for override in await EntitlementRepository(session).overrides(org_id=org_id)
        }
        keys = set(defaults) | set(overrides)
        if meter_keys is not None:
            keys &= meter_keys
        meters = await meters_by_key(session, org_id=org_id, keys=keys)
        found: list[Entitlement | Unlimited] = []
        for key in sorted(keys):
            meter = meters.get(key)
            if meter is None or meter.archived_at is not None:
                continue
            override = overrides.get(key)
            if override is None:
                found.append(Entitlement(meter=meter, terms=defaults[key], source="plan"))
            elif override.usage_limit is None:
                found.append(Unlimited(meter=meter, override=override))
            else:
                terms = EntitlementTerms(
                    limit=override.usage_limit,
                    mode=Mode(override.mode),
                    grace_percent=override.grace_percent,
                )
                found.append(Entitlement(meter=meter, terms=terms, source="override"))
        return plan, found
