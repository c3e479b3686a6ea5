import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tollgate_billing.pricing.currencies import MINOR_DIGITS
from tollgate_billing.pricing.money import fits_minor_units
from tollgate_billing.pricing.schemes import FixedAmount, Graduated, PriceScheme, Quantity, Volume

PLAN_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
METER_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"  # metering's meter keys
MAX_METERED_CHARGES = 20


class RateLimitTier(StrEnum):
    """The gateway's rate-limit tiers (TOLLGATE_GATEWAY_RATE_LIMIT_PLANS names them)."""

    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


def _known_currency(code: str) -> str:
    if code not in MINOR_DIGITS:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code (upper case, e.g. USD)")
    return code


PlanKey = Annotated[str, Field(pattern=PLAN_KEY_PATTERN, description="Never reused")]
PlanName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_known_currency)]
TrialDays = Annotated[int, Field(ge=0, le=365)]
MeterKey = Annotated[str, Field(pattern=METER_KEY_PATTERN)]


class MeteredCharge(BaseModel):
    """What one meter costs per billing period: the included quantity is free, the rest is
    priced by the scheme."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    included_quantity: Quantity = Decimal(0)
    pricing: PriceScheme


MeteredCharges = Annotated[dict[MeterKey, MeteredCharge], Field(max_length=MAX_METERED_CHARGES)]


class PlanPrices(BaseModel):
    """The fields that set what a plan costs: fixed once customers are on the plan."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    currency: Currency = "USD"
    monthly_price: FixedAmount = Decimal(0)
    yearly_price: FixedAmount | None = Field(
        None, description="Null: the plan is sold monthly only"
    )
    metered_charges: MeteredCharges = Field(default_factory=dict)

    @model_validator(mode="after")
    def _amounts_fit_the_currency(self) -> "PlanPrices":
        check_fixed_amounts(
            self.currency,
            monthly_price=self.monthly_price,
            yearly_price=self.yearly_price,
            metered_charges=self.metered_charges,
        )
        return self


def check_fixed_amounts(
    currency: str,
    *,
    monthly_price: Decimal | None,
    yearly_price: Decimal | None,
    metered_charges: dict[str, MeteredCharge] | None,
) -> None:
    """Fixed amounts are charged as stated, so they must be whole minor units (99.001 USD or
    1.5 JPY cannot be paid). Unit prices may be finer: they are rounded per line."""
    fixed = {"monthly_price": monthly_price, "yearly_price": yearly_price}
    for meter, charge in (metered_charges or {}).items():
        if isinstance(charge.pricing, Graduated | Volume):
            for index, tier in enumerate(charge.pricing.tiers):
                fixed[f"metered_charges.{meter}.pricing.tiers.{index}.flat_fee"] = tier.flat_fee
    for name, amount in fixed.items():
        if amount is not None and not fits_minor_units(amount, currency):
            raise ValueError(f"{name} {amount} is not a whole number of {currency} minor units")


class PlanCreate(PlanPrices):
    key: PlanKey
    name: PlanName
    trial_days: TrialDays = 0
    rate_limit_tier: RateLimitTier = RateLimitTier.FREE


class PlanUpdate(BaseModel):
    """Every field may change while no customer is on the plan; once one is, only name,
    trial_days (for trials started later) and rate_limit_tier."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: PlanName | None = None
    trial_days: TrialDays | None = None
    rate_limit_tier: RateLimitTier | None = None
    currency: Currency | None = None
    monthly_price: FixedAmount | None = None
    yearly_price: FixedAmount | None = None
    metered_charges: MeteredCharges | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> "PlanUpdate":
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set - {"yearly_price"}:  # null yearly: monthly only
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


PRICE_FIELDS = frozenset({"currency", "monthly_price", "yearly_price", "metered_charges"})


class PlanPublic(BaseModel):
    key: str
    name: str
    currency: str
    monthly_price: Decimal = Field(description='Decimal string in major units, e.g. "99.00"')
    yearly_price: Decimal | None
    trial_days: int
    rate_limit_tier: RateLimitTier
    metered_charges: dict[str, MeteredCharge]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = Field(description="Archived plans take no new customers")


class PlanAdminView(PlanPublic):
    customers: int = Field(description="Customers on the plan now; prices are fixed while > 0")


def plan_key_or_none(text: str) -> str | None:
    """The text if it can be a plan key: anything else is no plan, answered without a query."""
    return text if re.fullmatch(PLAN_KEY_PATTERN, text) else None
