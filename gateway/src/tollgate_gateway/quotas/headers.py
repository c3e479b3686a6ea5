"""The Tollgate-Quota-Warning field: an RFC 8941 structured list, one member per entitlement in
grace or exceeded, named like the problem's violated policies, e.g.

    Tollgate-Quota-Warning: "quota-api_requests";status="grace";limit=100000;used=100500;reset=86400

`reset` is the number of seconds until the period ends. Numbers keep the kind metering sent:
an integer is an sf-integer, anything else an sf-decimal (at most three decimals).
"""

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from tollgate_gateway.quotas.enforcement import seconds_until_reset
from tollgate_gateway.quotas.states import EntitlementState

QUOTA_WARNING = "Tollgate-Quota-Warning"
SF_INTEGER_MAX = 999_999_999_999_999  # 15 digits
SF_DECIMAL_MAX = Decimal("999999999999.999")  # 12 integer digits, 3 fractional
_THOUSANDTH = Decimal("0.001")


def sf_number(value: int | float) -> str:
    """An sf-integer for an int, an sf-decimal for a float; beyond their range, the largest
    value the field can carry (no real quota comes near it)."""
    if isinstance(value, int):
        return str(max(-SF_INTEGER_MAX, min(SF_INTEGER_MAX, value)))
    # repr() is the shortest text that reads back as this float: 0.1 stays 0.1.
    decimal = Decimal(repr(value)).quantize(_THOUSANDTH, rounding=ROUND_HALF_EVEN)
    decimal = max(-SF_DECIMAL_MAX, min(SF_DECIMAL_MAX, decimal))
    integer, _, fraction = f"{decimal:f}".partition(".")
    return f"{integer}.{fraction.rstrip('0') or '0'}"


def warning_member(state: EntitlementState, now: float) -> str:
    limit = sf_number(state.limit) if state.limit is not None else "0"
    return (
        f'"quota-{state.meter}";status="{state.status}";limit={limit};'
        f"used={sf_number(state.used)};reset={seconds_until_reset(state, now)}"
    )


def quota_warning_field(states: Sequence[EntitlementState], now: float) -> str:
    return ", ".join(warning_member(state, now) for state in states)
