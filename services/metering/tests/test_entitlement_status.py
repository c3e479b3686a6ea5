"""Where usage stands against terms, at the exact edges (no float anywhere)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollgate_metering.entitlements.status import (
    Status,
    billing_period,
    status_of,
    thresholds_reached,
)
from tollgate_metering.entitlements.terms import EntitlementTerms, Mode

HARD_100 = EntitlementTerms(limit=Decimal(100), mode=Mode.HARD, grace_percent=10)


@pytest.mark.parametrize(
    ("used", "status"),
    [
        ("0", Status.WITHIN),
        ("99.999", Status.WITHIN),
        ("100", Status.GRACE),
        ("109.999", Status.GRACE),
        ("110", Status.EXCEEDED),
        ("1e12", Status.EXCEEDED),
    ],
)
def test_status_edges_with_grace(used: str, status: Status) -> None:
    assert status_of(Decimal(used), HARD_100) == status


def test_without_grace_the_limit_itself_is_exceeded() -> None:
    terms = EntitlementTerms(limit=Decimal(3), mode=Mode.SOFT)
    assert status_of(Decimal(2), terms) == Status.WITHIN
    assert status_of(Decimal(3), terms) == Status.EXCEEDED


def test_a_fractional_grace_point_is_exact() -> None:
    terms = EntitlementTerms(limit=Decimal(3), grace_percent=10)  # refusal at 3.3
    assert status_of(Decimal("3.2999999"), terms) == Status.GRACE
    assert status_of(Decimal("3.3"), terms) == Status.EXCEEDED


@pytest.mark.parametrize(
    ("used", "limit", "reached"),
    [
        ("0", "10", []),
        ("4.999", "10", []),
        ("5", "10", [50]),
        ("7.99", "10", [50]),
        ("8", "10", [50, 80]),
        ("10", "10", [50, 80, 100]),
        ("1000", "10", [50, 80, 100]),
        ("1", "3", []),  # 33 %
        ("1.5", "3", [50]),
        ("2.4", "3", [50, 80]),
    ],
)
def test_thresholds(used: str, limit: str, reached: list[int]) -> None:
    assert thresholds_reached(Decimal(used), Decimal(limit)) == reached


def test_the_period_is_the_utc_calendar_month() -> None:
    period = billing_period(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert period.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert period.end == datetime(2027, 1, 1, tzinfo=UTC)
