"""The charge of a metered quantity for one period: a few lines, each rounded once."""

from dataclasses import dataclass
from decimal import Decimal

from tollgate_billing.pricing.money import exact_arithmetic, to_minor_units
from tollgate_billing.pricing.schemes import Graduated, Package, PerUnit, PriceScheme, Tier, Volume


@dataclass(frozen=True)
class ChargeLine:
    """One priced quantity: quantity units (or packages) at unit_price, plus flat_fee.

    exact_amount is the line in major units before rounding; amount is it in minor units."""

    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    exact_amount: Decimal
    amount: int
    tier: int | None = None  # the tier's index (from 0) for tiered schemes


@dataclass(frozen=True)
class Charge:
    currency: str
    quantity: Decimal  # measured
    included: Decimal
    billable: Decimal  # measured minus included, never below zero
    lines: tuple[ChargeLine, ...]

    @property
    def amount(self) -> int:
        """The total in minor units: the sum of the rounded lines, so an invoice adds up."""
        return sum(line.amount for line in self.lines)


def charge_for_usage(
    *, quantity: Decimal, included: Decimal, scheme: PriceScheme, currency: str
) -> Charge:
    """Price the quantity a meter measured in one period, after its included quantity.

    Tiers apply to the billable quantity (what exceeds the included one). Nothing billable
    means no line at all: no tier is reached, so no flat fee is due either."""
    if quantity < 0 or included < 0:
        raise ValueError("quantities are never negative")
    with exact_arithmetic():
        billable = max(quantity - included, Decimal(0))
        lines = _lines(billable, scheme, currency) if billable > 0 else []
    return Charge(
        currency=currency,
        quantity=quantity,
        included=included,
        billable=billable,
        lines=tuple(lines),
    )


def _line(
    quantity: Decimal,
    unit_price: Decimal,
    currency: str,
    *,
    flat_fee: Decimal = Decimal(0),
    tier: int | None = None,
) -> ChargeLine:
    exact = quantity * unit_price + flat_fee
    return ChargeLine(
        quantity=quantity,
        unit_price=unit_price,
        flat_fee=flat_fee,
        exact_amount=exact,
        amount=to_minor_units(exact, currency),
        tier=tier,
    )


def _lines(billable: Decimal, scheme: PriceScheme, currency: str) -> list[ChargeLine]:
    match scheme:
        case PerUnit():
            return [_line(billable, scheme.unit_price, currency)]
        case Package():
            packages, remainder = divmod(billable, Decimal(scheme.package_size))
            started = packages + (1 if remainder else 0)
            return [_line(started, scheme.package_price, currency)]
        case Graduated():
            return _graduated(billable, scheme.tiers, currency)
        case Volume():
            return _volume(billable, scheme.tiers, currency)
    raise TypeError(f"unknown price scheme {scheme!r}")


def _graduated(billable: Decimal, tiers: list[Tier], currency: str) -> list[ChargeLine]:
    lines = []
    lower = Decimal(0)
    for index, tier in enumerate(tiers):
        if billable <= lower:
            break
        upper = billable if tier.up_to is None else min(billable, tier.up_to)
        lines.append(
            _line(upper - lower, tier.unit_price, currency, flat_fee=tier.flat_fee, tier=index)
        )
        if tier.up_to is None:
            break
        lower = tier.up_to
    return lines


def _volume(billable: Decimal, tiers: list[Tier], currency: str) -> list[ChargeLine]:
    for index, tier in enumerate(tiers):
        if tier.up_to is None or billable <= tier.up_to:
            return [_line(billable, tier.unit_price, currency, flat_fee=tier.flat_fee, tier=index)]
    raise AssertionError("the last tier has no upper bound")
