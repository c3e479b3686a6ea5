"""Where the windows of a usage query begin and end, in the caller's time zone.

Computed here (zoneinfo) rather than by PostgreSQL, so one time-zone database decides both
which names are valid and where the windows fall; the query then only sorts minute buckets
into the windows (width_bucket over these boundaries).
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Window(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


# The longest from-to range per window size: at most 1,440 minute windows, 744 hour windows,
# and 400 days (a year and a month) of day or month windows.
MAX_RANGE = {
    Window.MINUTE: timedelta(days=1),
    Window.HOUR: timedelta(days=31),
    Window.DAY: timedelta(days=400),
    Window.MONTH: timedelta(days=400),
}

_FIXED_LENGTH = {Window.MINUTE: timedelta(minutes=1), Window.HOUR: timedelta(hours=1)}


def window_boundaries(
    *, start: datetime, end: datetime, window: Window, zone: ZoneInfo
) -> list[datetime]:
    """[start, every window start strictly between start and end, end], in UTC: window i covers
    [boundaries[i], boundaries[i + 1]), so the first and last windows may be partial."""
    inner = (
        _calendar_starts(start, end, window, zone)
        if window not in _FIXED_LENGTH
        else _fixed_starts(start, end, _FIXED_LENGTH[window], zone)
    )
    return [start, *(moment for moment in inner if moment > start), end]


def _fixed_starts(
    start: datetime, end: datetime, length: timedelta, zone: ZoneInfo
) -> Iterator[datetime]:
    """Instants at a whole local minute or hour. Stepping in absolute time keeps every hour one
    hour long across DST changes (the repeated 01:00 is two windows); realigning after each step
    follows offset changes that are not whole hours (Lord Howe's 30 minutes)."""
    moment = _aligned_at_or_before(start, length, zone)
    while moment < end:
        yield moment
        moment = _aligned_at_or_before(moment + length, length, zone)


def _aligned_at_or_before(moment: datetime, length: timedelta, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    into = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    return moment - into % length


def _calendar_starts(
    start: datetime, end: datetime, window: Window, zone: ZoneInfo
) -> Iterator[datetime]:
    """Local midnights of each day or month's first day. A midnight skipped by a DST change
    (fold 0 in the gap) resolves to the instant of the change, when that day begins."""
    day = start.astimezone(zone).date()
    if window == Window.MONTH:
        day = day.replace(day=1)
    while True:
        moment = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
        if moment >= end:
            return
        yield moment
        day = _next_month(day) if window == Window.MONTH else day + timedelta(days=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_start(moment: datetime) -> datetime:
    """The first instant of the calendar month (UTC) moment falls in."""
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month_start(moment: datetime) -> datetime:
    first = month_start(moment)
    return datetime.combine(_next_month(first.date()), time(), tzinfo=UTC)
