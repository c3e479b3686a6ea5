"""What an entitlement allows: a limit per billing period, hard or soft, with a grace margin.

The plan tiers' defaults are settings (billing will publish them with its plans); an operator
can override them per organisation and meter.
"""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tollgate_metering.meters.schemas import METER_KEY_PATTERN
from tollgate_metering.usage.schemas import UsageNumber


class Mode(StrEnum):
    HARD = "hard"  # the gateway refuses the org's requests once the limit (and grace) is used
    SOFT = "soft"  # the gateway lets requests through with a warning header


class EntitlementTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: UsageNumber = Field(gt=0, le=Decimal("1e15"), description="Per billing period")
    mode: Mode = Mode.HARD
    grace_percent: int = Field(
        0, ge=0, le=1000, description="How far past the limit requests still pass, flagged"
    )

    @property
    def refusal_point(self) -> Decimal:
        """Where grace ends: usage at or beyond it is exceeded."""
        return self.limit * (100 + self.grace_percent) / 100


MeterKeyName = Annotated[str, Field(pattern=METER_KEY_PATTERN)]
# plan tier → meter key → terms
PlanEntitlements = dict[str, dict[MeterKeyName, EntitlementTerms]]

# Free is capped hard, Pro warns past its allowance, Enterprise has no quota. The tier names are
# the gateway's rate-limit plans (TOLLGATE_GATEWAY_RATE_LIMIT_PLANS) and the keys service's.
DEFAULT_PLAN_ENTITLEMENTS: PlanEntitlements = {
    "free": {"api_requests": EntitlementTerms(limit=Decimal(100_000), mode=Mode.HARD)},
    "pro": {
        "api_requests": EntitlementTerms(limit=Decimal(5_000_000), mode=Mode.SOFT, grace_percent=10)
    },
    "enterprise": {},
}
