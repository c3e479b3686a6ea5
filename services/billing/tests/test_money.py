"""Currencies and the one rounding rule: half to even, to the currency's minor units."""

from decimal import Decimal

import pytest

from tollgate_billing.pricing.currencies import UnknownCurrencyError, minor_digits
from tollgate_billing.pricing.money import fits_minor_units, from_minor_units, to_minor_units


@pytest.mark.parametrize(
    ("currency", "digits"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("HUF", 2),
        ("ISK", 0),
    ],
)
def test_minor_digits_follow_iso_4217(currency, digits):
    assert minor_digits(currency) == digits


@pytest.mark.parametrize("code", ["usd", "XXX", "US", "", "DOLLAR", "XAU"])
def test_unknown_codes_are_refused(code):
    with pytest.raises(UnknownCurrencyError):
        minor_digits(code)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1.005", "USD", 100),  # a half cent rounds to the even cent
        ("1.015", "USD", 102),
        ("1.0150000001", "USD", 102),
        ("1.0149999999", "USD", 101),
        ("0.005", "EUR", 0),
        ("0.015", "EUR", 2),
        ("0.5", "JPY", 0),
        ("1.5", "JPY", 2),
        ("2.5", "JPY", 2),
        ("1.0005", "BHD", 1000),
        ("1.0015", "BHD", 1002),
        ("0.00001", "USD", 0),
        ("99", "USD", 9900),
        ("123456789012345.675", "USD", 12345678901234568),
    ],
)
def test_rounding_is_half_to_even_once(amount, currency, minor):
    assert to_minor_units(Decimal(amount), currency) == minor


def test_fixed_amounts_must_be_whole_minor_units():
    assert fits_minor_units(Decimal("99.00"), "USD")
    assert fits_minor_units(Decimal("99.10"), "USD")
    assert not fits_minor_units(Decimal("99.001"), "USD")
    assert fits_minor_units(Decimal("1500"), "JPY")
    assert not fits_minor_units(Decimal("1500.5"), "JPY")
    assert fits_minor_units(Decimal("1.234"), "KWD")
    assert not fits_minor_units(Decimal("1.2345"), "KWD")


def test_minor_units_read_back_with_the_currencys_digits():
    assert str(from_minor_units(9900, "USD")) == "99.00"
    assert str(from_minor_units(5, "USD")) == "0.05"
    assert str(from_minor_units(1500, "JPY")) == "1500"
    assert str(from_minor_units(1234, "KWD")) == "1.234"
