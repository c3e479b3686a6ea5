"""Where usage stands against an entitlement: pure functions, no I/O."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tollgate_metering.entitlements.terms import EntitlementTerms
from tollgate_metering.usage.windows import month_start, next_month_start

# Percentages of the limit that publish tollgate.metering.usage.threshold_reached, once each per
# period and limit.
THRESHOLD_PERCENTS = (50, 80, 100)


class Status(StrEnum):
    WITHIN = "within"  # used < limit
    GRACE = "grace"  # limit <= used < limit + grace: passes, flagged
    EXCEEDED = "exceeded"  # beyond grace: hard refuses, soft warns
    REMOVED = "removed"  # the entitlement no longer exists (published so the gateway forgets it)


def status_of(used: Decimal, terms: EntitlementTerms) -> Status:
    if used < terms.limit:
        return Status.WITHIN
    if used < terms.refusal_point:
        return Status.GRACE
    return Status.EXCEEDED


def thresholds_reached(used: Decimal, limit: Decimal) -> list[int]:
    """The threshold percentages this usage has reached (exact: no float on either side)."""
    return [percent for percent in THRESHOLD_PERCENTS if used * 100 >= limit * percent]


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive; also when the entitlement resets


def billing_period(now: datetime) -> Period:
    """The calendar month (UTC) holding now: the period GET /v1/usage reports, until billing
    publishes each customer's own periods."""
    return Period(start=month_start(now), end=next_month_start(now))
