import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from tollgate_billing.catalog.schemas import PLAN_KEY_PATTERN, Currency
from tollgate_billing.discounts.models import DiscountDuration

# Letters, digits, - and _: case-insensitive (SUMMER25 and summer25 are one code).
DiscountCodeText = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
DecimalString = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: DiscountCodeText
    percent: (
        Annotated[Decimal, Field(gt=0, le=100, decimal_places=6, allow_inf_nan=False)] | None
    ) = Field(None, description='Exact percent off the subtotal, e.g. "12.5"; or amount_off')
    amount_off: Annotated[int, Field(gt=0, strict=True)] | None = Field(
        None, description="Minor units of currency off the subtotal; or percent"
    )
    currency: Currency | None = Field(None, description="With amount_off only")
    duration: DiscountDuration
    periods: Annotated[int, Field(ge=1, le=1200, strict=True)] | None = Field(
        None, description="With duration repeating only: how many invoices"
    )
    expires_at: AwareDatetime | None = Field(None, description="No redemption from then on")
    max_redemptions: Annotated[int, Field(ge=1, strict=True)] | None = None
    plans: list[Annotated[str, Field(pattern=PLAN_KEY_PATTERN)]] | None = Field(
        None, min_length=1, max_length=100, description="Only customers on these plans"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.percent is None) == (self.amount_off is None):
            raise ValueError("send exactly one of percent and amount_off")
        if (self.amount_off is None) != (self.currency is None):
            raise ValueError("currency goes with amount_off, and only with it")
        if (self.duration == DiscountDuration.REPEATING) != (self.periods is not None):
            raise ValueError("periods goes with duration repeating, and only with it")
        return self


class DiscountPublic(BaseModel):
    code: str
    percent: DecimalString | None
    amount_off: int | None
    currency: str | None
    duration: str
    periods: int | None
    expires_at: datetime | None
    max_redemptions: int | None
    redemptions: int
    plans: list[str] | None
    created_at: datetime
    archived_at: datetime | None


class DiscountRedeem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=64)]


class CustomerDiscount(BaseModel):
    """The organisation's running discount."""

    id: uuid.UUID
    code: str
    percent: DecimalString | None
    amount_off: int | None
    currency: str | None
    duration: str
    periods_left: int | None = Field(description="Invoices still discounted; null: forever")
    redeemed_at: datetime
