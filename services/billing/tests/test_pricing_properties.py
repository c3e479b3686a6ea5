"""Properties of the pricing engine over generated prices, tiers and quantities."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tollgate_billing.pricing.charges import charge_for_usage
from tollgate_billing.pricing.schemes import Graduated, Package, PerUnit, Tier, Volume

prices = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
fees = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
quantities = st.integers(min_value=0, max_value=10**15).map(Decimal)
currencies = st.sampled_from(["USD", "JPY", "KWD", "EUR"])


@st.composite
def tier_lists(draw: st.DrawFn, *, descending_prices: bool = False) -> list[Tier]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**12), min_size=0, max_size=5)))
    tier_prices = draw(st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if descending_prices:
        tier_prices.sort(reverse=True)
    tier_fees = draw(st.lists(fees, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    ups: list[Decimal | None] = [Decimal(bound) for bound in bounds]
    ups.append(None)
    return [
        Tier(up_to=up, unit_price=price, flat_fee=fee)
        for up, price, fee in zip(ups, tier_prices, tier_fees, strict=True)
    ]


def amount(quantity, scheme, currency="USD", included=Decimal(0)):
    return charge_for_usage(
        quantity=quantity, included=included, scheme=scheme, currency=currency
    ).amount


@settings(max_examples=300, deadline=None)
@given(tiers=tier_lists(), quantity=quantities, currency=currencies)
def test_graduated_total_is_the_sum_of_its_tiers(tiers, quantity, currency):
    """Each tier charged alone as a single-tier per-unit price (with its fee) over the units
    that fall in it adds up to the graduated total."""
    total = charge_for_usage(
        quantity=quantity, included=Decimal(0), scheme=Graduated(tiers=tiers), currency=currency
    )
    expected = 0
    lower = Decimal(0)
    for tier in tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if upper <= lower:
            break
        alone = Graduated(
            tiers=[Tier(up_to=None, unit_price=tier.unit_price, flat_fee=tier.flat_fee)]
        )
        expected += amount(upper - lower, alone, currency)
        lower = upper
    assert total.amount == expected
    assert sum(line.quantity for line in total.lines) == quantity


@settings(max_examples=300, deadline=None)
@given(tiers=tier_lists(), quantity=quantities, extra=quantities)
def test_graduated_charges_never_fall_as_usage_grows(tiers, quantity, extra):
    scheme = Graduated(tiers=tiers)
    assert amount(quantity + extra, scheme) >= amount(quantity, scheme)


@settings(max_examples=300, deadline=None)
@given(tiers=tier_lists(descending_prices=True), quantity=quantities)
def test_volume_unit_price_never_rises_with_usage_when_tiers_get_cheaper(tiers, quantity):
    """With cheaper tiers for larger volumes, the price per unit paid only goes down."""
    scheme = Volume(tiers=[tier.model_copy(update={"flat_fee": Decimal(0)}) for tier in tiers])
    smaller = charge_for_usage(
        quantity=quantity, included=Decimal(0), scheme=scheme, currency="USD"
    )
    larger = charge_for_usage(
        quantity=quantity * 2 + 1, included=Decimal(0), scheme=scheme, currency="USD"
    )
    if smaller.lines:
        assert larger.lines[0].unit_price <= smaller.lines[0].unit_price


@settings(max_examples=300, deadline=None)
@given(tiers=tier_lists(), quantity=quantities, currency=currencies)
def test_a_volume_charge_is_its_tiers_price_for_every_unit(tiers, quantity, currency):
    result = charge_for_usage(
        quantity=quantity, included=Decimal(0), scheme=Volume(tiers=tiers), currency=currency
    )
    if quantity == 0:
        assert result.lines == ()
        return
    [line] = result.lines
    tier = tiers[line.tier]
    lower = Decimal(0) if line.tier == 0 else tiers[line.tier - 1].up_to
    assert lower < quantity and (tier.up_to is None or quantity <= tier.up_to)
    assert line.exact_amount == quantity * tier.unit_price + tier.flat_fee


@settings(max_examples=300, deadline=None)
@given(price=prices, quantity=quantities, included=quantities, currency=currencies)
def test_per_unit_is_a_one_tier_graduated_price_after_the_included_quantity(
    price, quantity, included, currency
):
    as_tiers = Graduated(tiers=[Tier(up_to=None, unit_price=price)])
    assert amount(quantity, PerUnit(unit_price=price), currency, included) == amount(
        quantity, as_tiers, currency, included
    )


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 10**6), price=prices, quantity=quantities)
def test_a_package_costs_what_its_started_packages_cost_per_unit(size, price, quantity):
    started = -(-int(quantity) // size)  # ceiling, in integers
    assert amount(quantity, Package(package_size=size, package_price=price)) == amount(
        Decimal(started), PerUnit(unit_price=price)
    )
