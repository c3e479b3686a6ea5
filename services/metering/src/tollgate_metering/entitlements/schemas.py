import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tollgate_metering.entitlements.status import Status
from tollgate_metering.entitlements.terms import Mode
from tollgate_metering.usage.schemas import UsageNumber

Source = Literal["plan", "override"]


class EntitlementView(BaseModel):
    """One meter's allowance this billing period and how much of it is used."""

    meter: str
    limit: UsageNumber | None = Field(description="Per period; null when unlimited")
    mode: Mode
    grace_percent: int
    source: Source = Field(description="The plan's default, or an operator's override")
    used: UsageNumber
    remaining: UsageNumber | None = Field(description="Before the limit; null when unlimited")
    status: Literal[Status.WITHIN, Status.GRACE, Status.EXCEEDED]
    period_start: datetime
    resets_at: datetime = Field(description="The end of the billing period")


class EntitlementList(BaseModel):
    plan: str
    period_start: datetime
    period_end: datetime
    data: list[EntitlementView]


class OverrideChange(BaseModel):
    """An operator's terms for one organisation and meter, replacing the plan's."""

    model_config = ConfigDict(extra="forbid")

    limit: Decimal | None = Field(
        gt=0, le=Decimal("1e15"), description="Per billing period; null means unlimited"
    )
    mode: Mode = Mode.HARD
    grace_percent: int = Field(0, ge=0, le=1000)


class EntitlementStatePublic(BaseModel):
    """The state published in tollgate.metering.entitlement.* and served to the gateway."""

    organization_id: uuid.UUID
    meter: str
    limit: UsageNumber | None
    mode: Mode
    grace_percent: int
    used: UsageNumber
    status: Status
    period_start: datetime
    period_end: datetime
    version: int


class EntitlementStates(BaseModel):
    items: list[EntitlementStatePublic]


class ThresholdReached(BaseModel):
    """The data of tollgate.metering.usage.threshold_reached."""

    organization_id: uuid.UUID
    meter: str
    threshold_percent: int
    limit: UsageNumber
    used: UsageNumber
    mode: Mode
    period_start: datetime
    period_end: datetime
