"""Proration to the second: which exact fraction of a period a stretch of time covers."""

from datetime import datetime
from fractions import Fraction


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return int(moment.timestamp() // 1)  # whole seconds: a part second counts for nothing


def period_fraction(
    *, period_start: datetime, period_end: datetime, start: datetime, end: datetime
) -> Fraction:
    """The exact share of [period_start, period_end) covered by [start, end), in whole seconds.

    A change at 12:00:00.999 counts from 12:00:00. The stretch must lie within the period."""
    period_from, period_to = _seconds(period_start), _seconds(period_end)
    covered_from, covered_to = _seconds(start), _seconds(end)
    if period_to <= period_from:
        raise ValueError("the period must end after it starts (at least one second)")
    if not period_from <= covered_from <= covered_to <= period_to:
        raise ValueError("the covered stretch must lie within the period, start before end")
    return Fraction(covered_to - covered_from, period_to - period_from)


def prorate(amount: int, fraction: Fraction) -> int:
    """The share of an amount in minor units, rounded half to even (ADR 0015)."""
    if not 0 <= fraction <= 1:
        raise ValueError("a share of a period lies between 0 and 1")
    return round(amount * fraction)  # Fraction rounds half to even
