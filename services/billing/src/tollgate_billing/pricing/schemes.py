"""How a metered quantity is priced: per unit, package, graduated tiers or volume tiers.

Prices are exact Decimals in the currency's major units (sub-cent prices allowed); they are
parsed from JSON without passing through a float (see decimal_json.py).
"""

import itertools
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

MAX_PRICE_DECIMALS = 12
MAX_TIERS = 20


def _plain(value: Decimal) -> str:
    """1E+6 is written 1000000 and 5E-7 0.0000005: the same number, as people read it."""
    return format(value, "f")


# In JSON (responses and stored charges), a decimal string without exponent.
Plain = PlainSerializer(_plain, return_type=str, when_used="json")

# A price per unit or per package: up to 12 decimals, below a billion.
UnitPrice = Annotated[
    Decimal,
    Field(ge=0, lt=Decimal("1e9"), decimal_places=MAX_PRICE_DECIMALS, max_digits=21),
    Plain,
]
# A fixed amount (a tier's flat fee): the plan checks it fits the currency's minor units.
FixedAmount = Annotated[Decimal, Field(ge=0, lt=Decimal("1e12"), decimal_places=4), Plain]
# A quantity of a meter: up to 1e18 with up to 12 decimals (meters may sum fractions).
Quantity = Annotated[
    Decimal,
    Field(ge=0, lt=Decimal("1e18"), decimal_places=MAX_PRICE_DECIMALS, max_digits=30),
    Plain,
]


class _Scheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerUnit(_Scheme):
    """Every billable unit at one price."""

    model: Literal["per_unit"] = "per_unit"
    unit_price: UnitPrice


class Package(_Scheme):
    """A price per started package of units: 1,001 units in packages of 1,000 are 2 packages."""

    model: Literal["package"] = "package"
    package_size: int = Field(ge=1, le=10**15)
    package_price: UnitPrice


class Tier(_Scheme):
    """Units up to and including up_to (null: no upper bound, only for the last tier)."""

    up_to: Quantity | None = Field(gt=0)
    unit_price: UnitPrice
    flat_fee: FixedAmount = Decimal(0)


def _check_tiers(tiers: list[Tier]) -> None:
    bounds = [tier.up_to for tier in tiers]
    if bounds[-1] is not None:
        raise ValueError("the last tier must have up_to null (no upper bound)")
    finite = [bound for bound in bounds[:-1] if bound is not None]
    if len(finite) != len(bounds) - 1:
        raise ValueError("only the last tier may have up_to null")
    if any(later <= earlier for earlier, later in itertools.pairwise(finite)):
        raise ValueError("each tier's up_to must be greater than the previous tier's")


Tiers = Annotated[list[Tier], Field(min_length=1, max_length=MAX_TIERS)]


class Graduated(_Scheme):
    """Each tier's units at that tier's price, plus the flat fee of every tier reached."""

    model: Literal["graduated"] = "graduated"
    tiers: Tiers

    @model_validator(mode="after")
    def _tiers_in_order(self) -> "Graduated":
        _check_tiers(self.tiers)
        return self


class Volume(_Scheme):
    """Every unit at the price of the tier the whole quantity falls in, plus its flat fee."""

    model: Literal["volume"] = "volume"
    tiers: Tiers

    @model_validator(mode="after")
    def _tiers_in_order(self) -> "Volume":
        _check_tiers(self.tiers)
        return self


PriceScheme = Annotated[PerUnit | Package | Graduated | Volume, Field(discriminator="model")]
