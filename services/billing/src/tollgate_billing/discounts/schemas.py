import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from tollgate_billing.catalog.schemas import PLAN_KEY_PATTERN, Currency
from tollgate_billing.discounts.models import DiscountDuration

# Letters, digits, - and _: case-insensitive (SUMMER25 and summer25 are one code).
DISCOUNT_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DiscountCodeText = Annotated[str, Field(pattern=DISCOUNT_CODE_PATTERN)]
# The columns' limits (bigint, integer): a larger number is a 422, not a database error.
MAX_BIGINT, MAX_INTEGER = 2**63 - 1, 2**31 - 1
DecimalString = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: DiscountCodeText
    percent: (
        Annotated[Decimal, Field(gt=0, le=100, decimal_places=6, allow_inf_nan=False)] | None
    ) = Field(None, description='Exact percent off the subtotal, e.g. "12.5"; or amount_off')
    amount_off: Annotated[int, Field(gt=0, le=MAX_BIGINT, strict=True)] | None = Field(
        None,
        validate_default=True,
        description="Minor units of currency off the subtotal; or percent",
    )
    currency: Currency | None = Field(
        None, validate_default=True, description="With amount_off only"
    )
    duration: DiscountDuration
    periods: Annotated[int, Field(ge=1, le=1200, strict=True)] | None = Field(
        None, validate_default=True, description="With duration repeating only: how many invoices"
    )
    expires_at: AwareDatetime | None = Field(None, description="No redemption from then on")
    max_redemptions: Annotated[int, Field(ge=1, le=MAX_INTEGER, strict=True)] | None = None
    plans: list[Annotated[str, Field(pattern=PLAN_KEY_PATTERN)]] | None = Field(
        None, min_length=1, max_length=100, description="Only customers on these plans"
    )

    # Each consistency rule is reported on the field it concerns (the fields before it are in
    # info.data when they were valid; when one was not, its own error says so).
    @field_validator("amount_off")
    @classmethod
    def _percent_xor_amount_off(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "percent" in info.data and (info.data["percent"] is None) == (value is None):
            raise ValueError("send exactly one of percent and amount_off")
        return value

    @field_validator("currency")
    @classmethod
    def _currency_with_amount_off(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "amount_off" in info.data and (info.data["amount_off"] is None) != (value is None):
            raise ValueError("currency goes with amount_off, and only with it")
        return value

    @field_validator("periods")
    @classmethod
    def _periods_with_repeating(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "duration" in info.data and (
            (info.data["duration"] == DiscountDuration.REPEATING) != (value is not None)
        ):
            raise ValueError("periods goes with duration repeating, and only with it")
        return value


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
