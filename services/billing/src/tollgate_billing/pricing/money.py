"""Exact money arithmetic: Decimal amounts in major units, integer amounts in minor units.

Every computation runs in a context that raises instead of rounding silently, so the one
rounding that happens is the explicit one in to_minor_units (ROUND_HALF_EVEN, once per line).
"""

import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal

from tollgate_billing.pricing.currencies import minor_digits

# 1e15 units at a price with 12 decimals and 12 integer digits need about 40 digits; the
# Inexact trap proves no product or sum is ever rounded by the context.
_PRECISION = 100


@contextmanager
def exact_arithmetic() -> Iterator[None]:
    """Decimal arithmetic that raises decimal.Inexact rather than rounding anything."""
    with decimal.localcontext() as context:
        context.prec = _PRECISION
        context.traps[decimal.Inexact] = True
        context.traps[decimal.Rounded] = True
        context.traps[decimal.InvalidOperation] = True
        yield


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Round an exact amount in major units to whole minor units, half to even.

    1.005 USD -> 100 (half to even), 1.015 USD -> 102, 0.5 JPY -> 0, 1.5 JPY -> 2."""
    digits = minor_digits(currency)
    # A fresh context: this is the one place that rounds, whatever the caller's traps.
    with decimal.localcontext(decimal.Context(prec=_PRECISION)):
        minor = amount.scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(minor)


def fits_minor_units(amount: Decimal, currency: str) -> bool:
    """Whether the amount is a whole number of the currency's minor units (99.00 USD is,
    99.001 USD is not): fixed amounts such as a monthly fee must be payable as stated."""
    digits = minor_digits(currency)
    return amount.scaleb(digits) == amount.scaleb(digits).to_integral_value()


def from_minor_units(minor: int, currency: str) -> Decimal:
    """The amount in major units, with exactly the currency's digits: 9900 USD -> 99.00."""
    digits = minor_digits(currency)
    return Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))
