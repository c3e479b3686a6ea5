"""Billing periods on the calendar, anchored on the instant a subscription (re)started.

Period n runs from anchor + n intervals to anchor + (n + 1) intervals. A month is added
calendar-wise with the same time of day, the day clamped to the month's last day: anchored on
31 January 10:00 UTC, periods end on 28 (or 29) February, 31 March, 30 April... always counted
from the anchor, so a short month never shortens the later ones. A year is 12 months (29
February anchors end on 28 February in common years). All in UTC.
"""

import calendar
from datetime import UTC, datetime

from tollgate_billing.subscriptions.models import Interval

MONTHS = {Interval.MONTH: 1, Interval.YEAR: 12}


def add_months(moment: datetime, months: int) -> datetime:
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def period_bounds(anchor: datetime, interval: Interval, number: int) -> tuple[datetime, datetime]:
    """Start and end of period `number` (from 0) of a subscription anchored at `anchor`."""
    step = MONTHS[interval]
    return add_months(anchor, number * step), add_months(anchor, (number + 1) * step)


def whole_second(moment: datetime) -> datetime:
    """Changes count in whole seconds (ADR 0015): 12:00:00.999 is 12:00:00."""
    return moment.astimezone(UTC).replace(microsecond=0)
