import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from tollgate_billing.catalog.schemas import PlanPublic


class CustomerPublic(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    plan: PlanPublic
    tax_rate: Annotated[Decimal, PlainSerializer(str, return_type=str)] | None = Field(
        description='Percent as a decimal string, e.g. "19" or "8.875"; null: no tax'
    )
    created_at: datetime
    updated_at: datetime


# Exact percent, at most 6 decimals: a rate such as 8.875 % is stated exactly.
TaxRate = Annotated[Decimal, Field(ge=0, le=100, decimal_places=6, allow_inf_nan=False)]


class TaxRateSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: TaxRate | None = Field(
        description='Percent, e.g. "19" or 8.875 (0 to 100); null removes the tax'
    )


class CustomerTax(BaseModel):
    organization_id: uuid.UUID
    tax_rate: Annotated[Decimal, PlainSerializer(str, return_type=str)] | None
