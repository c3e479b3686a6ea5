"""Proration to the second, as an exact fraction of the period."""

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from tollgate_billing.pricing.proration import period_fraction, prorate

NOVEMBER = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def fraction(start, end, period=NOVEMBER):
    return period_fraction(period_start=period[0], period_end=period[1], start=start, end=end)


def test_the_whole_period_is_one_and_nothing_is_zero():
    assert fraction(*NOVEMBER) == 1
    assert fraction(NOVEMBER[0], NOVEMBER[0]) == 0
    assert fraction(NOVEMBER[1], NOVEMBER[1]) == 0


def test_half_of_november_is_exactly_fifteen_of_thirty_days():
    mid = datetime(2026, 11, 16, tzinfo=UTC)
    assert fraction(mid, NOVEMBER[1]) == Fraction(1, 2)
    assert fraction(NOVEMBER[0], mid) + fraction(mid, NOVEMBER[1]) == 1


def test_one_second_of_a_thirty_day_month():
    start = datetime(2026, 11, 10, 12, 0, 0, tzinfo=UTC)
    assert fraction(start, start + timedelta(seconds=1)) == Fraction(1, 30 * 86400)


def test_part_seconds_count_for_nothing():
    start = datetime(2026, 11, 10, 12, 0, 0, 999_999, tzinfo=UTC)
    end = datetime(2026, 11, 10, 12, 0, 1, 500_000, tzinfo=UTC)
    assert fraction(start, end) == Fraction(1, 30 * 86400)


def test_time_zones_do_not_change_the_share():
    paris = timezone(timedelta(hours=1))
    start = datetime(2026, 11, 16, 1, 0, tzinfo=paris)  # midnight UTC
    assert fraction(start, NOVEMBER[1]) == Fraction(1, 2)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)),
    ],
)
def test_a_stretch_outside_the_period_is_refused(start, end):
    with pytest.raises(ValueError, match="within the period"):
        fraction(start, end)


def test_empty_periods_and_naive_datetimes_are_refused():
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="end after it starts"):
        fraction(moment, moment, period=(moment, moment))
    with pytest.raises(ValueError, match="timezone-aware"):
        fraction(datetime(2026, 11, 2), datetime(2026, 11, 3))


@pytest.mark.parametrize(
    ("amount", "share", "expected"),
    [
        (9900, Fraction(1, 2), 4950),
        (9900, Fraction(1, 30), 330),
        (1, Fraction(1, 2), 0),  # half a cent: to the even cent
        (3, Fraction(1, 2), 2),
        (9999, Fraction(1, 3), 3333),
        (10000, Fraction(1, 3), 3333),
        (10000, Fraction(2, 3), 6667),
        (9900, Fraction(0), 0),
        (9900, Fraction(1), 9900),
    ],
)
def test_prorated_amounts_round_half_to_even(amount, share, expected):
    assert prorate(amount, share) == expected


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        prorate(100, Fraction(3, 2))
