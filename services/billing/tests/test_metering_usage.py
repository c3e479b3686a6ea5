"""Billing's client of metering: a period's usage, read with billing's own service token."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tollgate_billing.invoices.metering_usage import (
    MeteringUnavailableError,
    MeteringUsageClient,
    usage_minute,
    usage_window,
)
from tollgate_shared.identity import generate_keypair

REQUEST = {"meter": "api_requests"}


def test_a_period_is_read_in_the_whole_minutes_its_edges_fall_in():
    edge = datetime(2026, 3, 14, 10, 47, 42, 123000, tzinfo=UTC)
    minute = datetime(2026, 3, 14, 10, 47, tzinfo=UTC)
    assert usage_minute(edge) == minute
    assert usage_window(edge, edge + timedelta(days=31)) == (minute, minute + timedelta(days=31))
    # A running period includes the current minute: everything so far.
    assert usage_window(edge, edge + timedelta(days=2), running=True) == (
        minute,
        minute + timedelta(days=2, minutes=1),
    )
    assert usage_window(minute, minute + timedelta(days=2), running=True)[1] == minute + timedelta(
        days=2
    )


async def test_usage_of_exactly_the_period_from_a_real_metering(billing_app, metering):
    org_id = uuid.uuid4()
    start = datetime(2026, 3, 14, 10, 47, 42, tzinfo=UTC)  # the subscription's anchor
    end = datetime(2026, 4, 14, 10, 47, 42, tzinfo=UTC)
    await metering.store(
        org_id,
        ("api_requests", "k", start - timedelta(seconds=1), REQUEST),  # the minute it starts: in
        ("api_requests", "k", end - timedelta(minutes=1), REQUEST),  # last whole minute: in
        ("api_requests", "k", end - timedelta(seconds=1), REQUEST),  # the minute it ends: next
        ("api_requests", "k", end + timedelta(seconds=18), REQUEST),  # next
        ("api_requests", "k", start - timedelta(seconds=43), REQUEST),  # the minute before: last
        ("api_requests", "k", start + timedelta(days=2), {"route": "usage"}),  # Tollgate's own
    )
    usage = await billing_app.state.metering_usage.period_usage(
        org_id=org_id, period_start=start, period_end=end
    )
    # Minutes belong to the period their start falls in: [10:47 on the 14th, 10:47 a month on).
    assert (usage.usage_from, usage.usage_to) == (usage_minute(start), usage_minute(end))
    assert usage.of("api_requests") == Decimal(2)
    assert usage.of("not_a_meter") == Decimal(0)
    # The next period gets the minute this one left out, and nothing twice.
    following = await billing_app.state.metering_usage.period_usage(
        org_id=org_id, period_start=end, period_end=end + timedelta(days=30)
    )
    assert following.of("api_requests") == Decimal(2)


async def test_a_key_metering_does_not_trust_is_refused(metering):
    client = MeteringUsageClient(
        base_url="http://metering",
        private_key=generate_keypair()[0],
        transport=httpx.ASGITransport(app=metering.app),
    )
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(MeteringUnavailableError, match="401"):
        await client.period_usage(
            org_id=uuid.uuid4(), period_start=start, period_end=start + timedelta(days=31)
        )


async def test_unreachable_metering_is_a_clear_error():
    client = MeteringUsageClient(base_url="http://127.0.0.1:9", private_key=generate_keypair()[0])
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(MeteringUnavailableError, match="could not be reached"):
        await client.period_usage(
            org_id=uuid.uuid4(), period_start=start, period_end=start + timedelta(days=31)
        )
