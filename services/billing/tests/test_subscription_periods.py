"""Billing periods on the calendar: anchored on the start instant, months clamped."""

from datetime import UTC, datetime

import pytest

from tollgate_billing.subscriptions.models import Interval
from tollgate_billing.subscriptions.periods import add_months, period_bounds, whole_second


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        (at(2027, 1, 31, 10), 1, at(2027, 2, 28, 10)),  # 28-day February
        (at(2028, 1, 31, 10), 1, at(2028, 2, 29, 10)),  # leap year
        (at(2027, 1, 31, 10), 2, at(2027, 3, 31, 10)),  # counted from the anchor, not chained
        (at(2027, 1, 30, 10), 1, at(2027, 2, 28, 10)),
        (at(2027, 3, 31, 23, 59, 59), 1, at(2027, 4, 30, 23, 59, 59)),
        (at(2027, 12, 15), 1, at(2028, 1, 15)),  # across a year
        (at(2028, 2, 29), 12, at(2029, 2, 28)),  # a leap day anchor, a common year
        (at(2028, 2, 29), 48, at(2032, 2, 29)),
    ],
)
def test_months_are_added_on_the_calendar_and_clamped(anchor, months, expected):
    assert add_months(anchor, months) == expected


def test_periods_follow_the_anchor_through_short_months():
    anchor = at(2027, 1, 31, 10)
    ends = [period_bounds(anchor, Interval.MONTH, number)[1] for number in range(4)]
    assert ends == [
        at(2027, 2, 28, 10),
        at(2027, 3, 31, 10),
        at(2027, 4, 30, 10),
        at(2027, 5, 31, 10),
    ]
    # Each period starts where the previous one ended: no gap, no overlap.
    assert period_bounds(anchor, Interval.MONTH, 1)[0] == ends[0]
    assert period_bounds(anchor, Interval.YEAR, 1) == (at(2028, 1, 31, 10), at(2029, 1, 31, 10))


def test_changes_count_in_whole_seconds():
    assert whole_second(datetime(2027, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC)) == at(2027, 1, 1, 12)
