"""The pricing engine at its boundaries: tier edges, zero, included above usage, huge usage,
sub-cent prices, half cents, currencies with 0 and 3 minor digits."""

from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from tollgate_billing.pricing.charges import charge_for_usage
from tollgate_billing.pricing.schemes import Graduated, Package, PerUnit, PriceScheme, Tier, Volume

D = Decimal
HUGE = D(10**15)


def charge(quantity, scheme, *, included=0, currency="USD"):
    return charge_for_usage(
        quantity=D(quantity), included=D(included), scheme=scheme, currency=currency
    )


def tiers(*specs):
    """(up_to, unit_price[, flat_fee]) triples; up_to None for the last."""
    return [
        Tier(up_to=None if up_to is None else D(up_to), unit_price=D(price), flat_fee=D(fee))
        for up_to, price, fee in ((*spec, 0) if len(spec) == 2 else spec for spec in specs)
    ]


# 0-1,000 at $0.10, 1,001-10,000 at $0.05 (+$2 flat), beyond at $0.01 (+$10 flat).
THREE_TIERS = tiers((1000, "0.10"), (10000, "0.05", 2), (None, "0.01", 10))
PRO_REQUESTS = Package(package_size=1000, package_price=D("0.05"))


class TestPerUnit:
    def test_units_times_price(self):
        result = charge(1234, PerUnit(unit_price=D("0.02")))
        assert result.amount == 2468
        assert result.billable == 1234
        [line] = result.lines
        assert (line.quantity, line.exact_amount, line.amount) == (1234, D("24.68"), 2468)

    def test_zero_usage_has_no_line(self):
        result = charge(0, PerUnit(unit_price=D("5")))
        assert result.amount == 0
        assert result.lines == ()

    def test_included_quantity_is_free_and_never_negative(self):
        assert charge(100, PerUnit(unit_price=D("1")), included=1000).amount == 0
        assert charge(100, PerUnit(unit_price=D("1")), included=1000).billable == 0
        assert charge(1000, PerUnit(unit_price=D("1")), included=1000).amount == 0
        assert charge(1001, PerUnit(unit_price=D("1")), included=1000).amount == 100

    def test_sub_cent_prices_are_exact_before_the_line_is_rounded(self):
        # 3 x $0.001 = $0.003 -> 0 cents; 5 x = $0.005 -> half to even -> 0; 15 x = 0.015 -> 2.
        price = PerUnit(unit_price=D("0.001"))
        assert charge(3, price).lines[0].exact_amount == D("0.003")
        assert charge(3, price).amount == 0
        assert charge(5, price).amount == 0
        assert charge(15, price).amount == 2
        assert charge(25, price).amount == 2
        assert charge(35, price).amount == 4

    def test_twelve_decimal_prices_over_a_huge_quantity(self):
        result = charge(HUGE, PerUnit(unit_price=D("0.000000000001")))
        assert result.lines[0].exact_amount == D("1000.000000000000")
        assert result.amount == 100_000

    def test_huge_usage_is_exact(self):
        result = charge(HUGE + 1, PerUnit(unit_price=D("0.0003")))
        # (1e15 + 1) x 0.0003 = 300,000,000,000.0003 dollars
        assert result.lines[0].exact_amount == D("300000000000.0003")
        assert result.amount == 30_000_000_000_000

    def test_fractional_quantities(self):
        assert charge(D("2.5"), PerUnit(unit_price=D("0.10"))).amount == 25
        assert charge(D("0.05"), PerUnit(unit_price=D("0.10"))).amount == 0  # 0.005: even

    def test_zero_minor_digit_currency(self):
        assert charge(3, PerUnit(unit_price=D("0.5")), currency="JPY").amount == 2  # 1.5 -> 2
        assert charge(5, PerUnit(unit_price=D("0.5")), currency="JPY").amount == 2  # 2.5 -> 2
        assert charge(7, PerUnit(unit_price=D("0.5")), currency="JPY").amount == 4  # 3.5 -> 4
        assert charge(1000, PerUnit(unit_price=D("1.25")), currency="JPY").amount == 1250

    def test_three_minor_digit_currency(self):
        assert charge(1, PerUnit(unit_price=D("0.0125")), currency="KWD").amount == 12
        assert charge(1, PerUnit(unit_price=D("0.0135")), currency="KWD").amount == 14
        assert charge(3, PerUnit(unit_price=D("1.001")), currency="BHD").amount == 3003

    def test_negative_quantities_are_refused(self):
        with pytest.raises(ValueError):
            charge(-1, PerUnit(unit_price=D("1")))
        with pytest.raises(ValueError):
            charge(1, PerUnit(unit_price=D("1")), included=-1)


class TestPackage:
    @pytest.mark.parametrize(
        ("requests", "packages", "cents"),
        [
            (0, 0, 0),
            (1_000_000, 0, 0),  # exactly the included million
            (1_000_001, 1, 5),  # one request over: a whole started package
            (1_001_000, 1, 5),  # exactly one package
            (1_001_001, 2, 10),
            (2_000_000, 1000, 5000),
            (1_000_000 + 10**15, 10**12, 5 * 10**12),
        ],
    )
    def test_the_pro_plans_requests(self, requests, packages, cents):
        result = charge(requests, PRO_REQUESTS, included=1_000_000)
        assert result.amount == cents
        assert sum(line.quantity for line in result.lines) == packages

    def test_usage_below_the_included_quantity_costs_nothing(self):
        assert charge(999_999, PRO_REQUESTS, included=1_000_000).lines == ()

    def test_a_fractional_quantity_starts_a_package(self):
        result = charge(D("1000.5"), Package(package_size=1000, package_price=D("2")))
        assert result.lines[0].quantity == 2
        assert result.amount == 400

    def test_sub_cent_package_prices_round_per_line(self):
        # 3 packages of $0.005 = $0.015 -> 2 cents (half to even); 1 package -> 0 cents.
        scheme = Package(package_size=10, package_price=D("0.005"))
        assert charge(30, scheme).amount == 2
        assert charge(10, scheme).amount == 0


class TestGraduated:
    @pytest.mark.parametrize(
        ("quantity", "cents"),
        [
            (0, 0),
            (1, 10),
            (999, 9990),
            (1000, 10000),  # the first tier's edge belongs to the first tier
            (1001, 10000 + 5 + 200),  # the second tier reached: its flat fee is due
            (10000, 10000 + 45000 + 200),
            (10001, 10000 + 45000 + 200 + 1 + 1000),
            (20000, 10000 + 45000 + 200 + 10000 + 1000),
        ],
    )
    def test_each_tier_at_its_own_price(self, quantity, cents):
        assert charge(quantity, Graduated(tiers=THREE_TIERS)).amount == cents

    def test_lines_name_their_tiers(self):
        result = charge(10001, Graduated(tiers=THREE_TIERS))
        assert [(line.tier, line.quantity) for line in result.lines] == [
            (0, 1000),
            (1, 9000),
            (2, 1),
        ]
        assert [line.flat_fee for line in result.lines] == [0, 2, 10]

    def test_tiers_apply_after_the_included_quantity(self):
        assert charge(1500, Graduated(tiers=THREE_TIERS), included=500).amount == 10000
        assert charge(1501, Graduated(tiers=THREE_TIERS), included=500).amount == 10205

    def test_a_single_unbounded_tier_is_per_unit_with_a_fee(self):
        scheme = Graduated(tiers=tiers((None, "0.25", 3)))
        assert charge(4, scheme).amount == 400
        assert charge(0, scheme).amount == 0  # no unit, no tier reached, no flat fee

    def test_each_tier_line_is_rounded_once(self):
        # Two tiers of half cents: 1 x $0.005 -> 0 and 1 x $0.015 -> 2; never 0.02 as a whole.
        scheme = Graduated(tiers=tiers((1, "0.005"), (None, "0.015")))
        result = charge(2, scheme)
        assert [line.amount for line in result.lines] == [0, 2]
        assert result.amount == 2

    def test_huge_usage(self):
        result = charge(HUGE, Graduated(tiers=THREE_TIERS))
        assert result.amount == 10000 + 45000 + 200 + (10**15 - 10000) + 1000


class TestVolume:
    @pytest.mark.parametrize(
        ("quantity", "cents"),
        [
            (0, 0),
            (1, 10),
            (1000, 10000),  # at the edge: still the first tier's price
            (1001, 1001 * 5 + 200),  # one more: every unit at the second tier's price
            (10000, 10000 * 5 + 200),
            (10001, 10001 + 1000),
            (10**15, 10**15 + 1000),
        ],
    )
    def test_every_unit_at_the_price_of_the_tier_reached(self, quantity, cents):
        assert charge(quantity, Volume(tiers=THREE_TIERS)).amount == cents

    def test_one_line_naming_the_tier(self):
        [line] = charge(5000, Volume(tiers=THREE_TIERS)).lines
        assert (line.tier, line.quantity, line.unit_price, line.flat_fee) == (1, 5000, D("0.05"), 2)

    def test_included_quantity_counts_before_the_tier_is_chosen(self):
        assert charge(1500, Volume(tiers=THREE_TIERS), included=500).amount == 10000

    def test_zero_minor_digit_currency_with_flat_fee(self):
        scheme = Volume(tiers=tiers((100, "1.5", 100), (None, "0.5", 500)))
        assert charge(3, scheme, currency="JPY").amount == 104  # 4.5 + 100 -> 104
        assert charge(101, scheme, currency="JPY").amount == 550  # 50.5 + 500 -> 550 (even)


SCHEME = TypeAdapter(PriceScheme)


class TestSchemeValidation:
    @pytest.mark.parametrize(
        "body",
        [
            {"model": "per_unit", "unit_price": "-0.01"},
            {"model": "per_unit", "unit_price": "0.0000000000001"},  # 13 decimals
            {"model": "per_unit", "unit_price": "NaN"},
            {"model": "per_unit", "unit_price": "Infinity"},
            {"model": "per_unit", "unit_price": "1e9"},
            {"model": "per_unit"},
            {"model": "per_unit", "unit_price": "1", "extra": 1},
            {"model": "package", "package_size": 0, "package_price": "1"},
            {"model": "package", "package_size": 1.5, "package_price": "1"},
            {"model": "graduated", "tiers": []},
            {"model": "graduated", "tiers": [{"up_to": 10, "unit_price": "1"}]},
            {
                "model": "graduated",
                "tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}],
            },
            {
                "model": "volume",
                "tiers": [
                    {"up_to": 10, "unit_price": "1"},
                    {"up_to": 10, "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
            {
                "model": "volume",
                "tiers": [{"up_to": 0, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}],
            },
            {"model": "volume", "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "-1"}]},
            {"model": "stairs", "unit_price": "1"},
        ],
    )
    def test_bad_schemes_are_refused(self, body):
        with pytest.raises(ValidationError):
            SCHEME.validate_python(body)

    def test_decimal_strings_are_exact(self):
        scheme = SCHEME.validate_python({"model": "per_unit", "unit_price": "0.000000000001"})
        assert scheme.unit_price == D("1E-12")
