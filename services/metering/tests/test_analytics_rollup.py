"""The request analytics rollup (ADR 0017): what the ingestion writes into it, the backfill of
migration 0005, and the day and 30-day figures read from it against a computation in Python
over the raw requests."""

import importlib.util
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tollgate_metering
from tollgate_metering.analytics import histogram
from tollgate_metering.analytics.histogram import RELATIVE_ERROR
from tollgate_metering.gateway_usage.handlers import record_gateway_usage_batch

from .test_analytics import (
    DAY,
    NO_PLAN,
    THIRTY_DAYS,
    Call,
    approx_figures,
    expected,
    figures,
    get,
    percentile_cont,
    record,
)

KEYS = [str(uuid.uuid4()) for _ in range(3)] + [None]
ROUTES = ["search", "upload", "export"]
STATUSES = [200] * 12 + [201, 204, 304, 400, 404, 429, 500, 503]
PLANS = ["pro", "free", None, NO_PLAN]


def random_latency(rng: random.Random) -> float:
    """Mostly tens of milliseconds, with outliers both ways (0.1 ms to 10 minutes)."""
    roll = rng.random()
    if roll < 0.03:
        return round(rng.uniform(0.1, 0.3), 3)
    if roll < 0.08:
        return round(rng.uniform(5_000, 590_000), 3)
    return round(rng.lognormvariate(math.log(40), 1.0) + 0.1, 3)


def random_calls(seed: int, count: int) -> list[Call]:
    rng = random.Random(seed)
    return [
        Call(
            # Clear of the 30-day edge, which moves while the test runs.
            ago=timedelta(seconds=rng.uniform(60, THIRTY_DAYS - 3600)),
            status=rng.choice(STATUSES),
            latency_ms=random_latency(rng),
            key_id=rng.choice(KEYS),
            route=rng.choice(ROUTES),
            plan=rng.choice(PLANS),
            request_bytes=rng.randrange(0, 5000),
            response_bytes=rng.randrange(0, 500_000),
        )
        for _ in range(count)
    ]


UNITS = ("hour", "day")


async def rollup_rows(db, org_id: uuid.UUID, unit: str) -> list[tuple[Any, ...]]:
    query = f"""
        SELECT bucket_start, key_id, route, status, plan, requests, request_bytes,
               response_bytes, latency_buckets, latency_counts
        FROM metering.request_analytics_{unit}
        WHERE org_id = :org_id ORDER BY 1, 2 NULLS FIRST, 3, 4, 5
    """  # noqa: S608 (fixed names)
    async with db() as session:
        result = await session.execute(sa.text(query), {"org_id": org_id})
        return [tuple(row) for row in result.all()]


async def by_dimension_rows(db, org_id: uuid.UUID) -> list[tuple[Any, ...]]:
    query = """
        SELECT bucket_start, dimension, grp, status, requests, request_bytes, response_bytes,
               latency_buckets, latency_counts
        FROM metering.request_analytics_day_by
        WHERE org_id = :org_id ORDER BY 1, 2, 3 NULLS FIRST, 4
    """
    async with db() as session:
        result = await session.execute(sa.text(query), {"org_id": org_id})
        return [tuple(row) for row in result.all()]


def python_by_dimension(calls: list[Call], now: datetime) -> list[tuple[Any, ...]]:
    """The rows of request_analytics_day_by computed here from the calls."""
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for call in calls:
        day = (now - call.ago).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        plan = "unknown" if call.plan in (None, NO_PLAN) else call.plan
        for dimension, group in (
            ("all", None),
            ("key", call.key_id),
            ("route", call.route),
            ("plan", plan),
        ):
            row = rows.setdefault((day, dimension, group, call.status), [0, 0, 0, {}])
            row[0] += 1
            row[1] += call.request_bytes
            row[2] += call.response_bytes
            position = histogram.position(call.latency_ms)
            row[3][position] = row[3].get(position, 0) + 1
    return [
        (*key, *values[:3], sorted(values[3]), [values[3][p] for p in sorted(values[3])])
        for key, values in sorted(
            rows.items(), key=lambda item: (item[0][:2], item[0][2] is not None, item[0][2:])
        )
    ]


def python_rollup(calls: list[Call], now: datetime, unit: str) -> list[tuple[Any, ...]]:
    """The rollup rows computed here from the calls."""
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for call in calls:
        bucket = (now - call.ago).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if unit == "day":
            bucket = bucket.replace(hour=0)
        plan = "unknown" if call.plan in (None, NO_PLAN) else call.plan
        key = (bucket, call.key_id, call.route, call.status, plan)
        row = rows.setdefault(key, [0, 0, 0, {}])
        row[0] += 1
        row[1] += call.request_bytes
        row[2] += call.response_bytes
        position = histogram.position(call.latency_ms)
        row[3][position] = row[3].get(position, 0) + 1
    return [
        (*key, *values[:3], sorted(values[3]), [values[3][p] for p in sorted(values[3])])
        for key, values in sorted(
            rows.items(), key=lambda item: (item[0][0], item[0][1] is not None, item[0][1:])
        )
    ]


@pytest.fixture
async def month(db, acme, globex) -> tuple[list[Call], datetime]:
    """400 of acme's requests over 30 days; globex's at the same times with acme's key ids."""
    calls = random_calls(seed=17, count=400)
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await record_gateway_usage_batch(
            session, [call.cloud_event(acme.org_id, now) for call in calls]
        )
    await record(db, globex, random_calls(seed=18, count=50))
    return calls, now


async def test_the_ingestion_writes_the_rollup_rows_of_the_stored_requests(db, acme, month):
    calls, now = month
    for unit in UNITS:
        assert await rollup_rows(db, acme.org_id, unit) == python_rollup(calls, now, unit)
    assert await by_dimension_rows(db, acme.org_id) == python_by_dimension(calls, now)


async def test_duplicates_add_nothing_to_the_rollup(client, db, acme, month):
    calls, now = month
    before = await rollup_rows(db, acme.org_id, "hour")
    summary = await get(client, "/v1/analytics/summary", acme.user(), period="30d")
    # The same events again (same ids), some within a batch of new ones.
    new = random_calls(seed=19, count=5)
    async with db() as session, session.begin():
        await record_gateway_usage_batch(
            session, [call.cloud_event(acme.org_id, now) for call in calls[:200] + new]
        )
    await record(db, acme, calls[200:])
    for unit in UNITS:
        assert await rollup_rows(db, acme.org_id, unit) == python_rollup(calls + new, now, unit)
    assert await by_dimension_rows(db, acme.org_id) == python_by_dimension(calls + new, now)
    assert before != await rollup_rows(db, acme.org_id, "hour")
    again = await get(client, "/v1/analytics/summary", acme.user(), period="30d")
    assert again["requests"] == summary["requests"] + 5


async def test_day_and_30_days_match_the_raw_requests(client, acme, globex, month):
    calls, _ = month
    for period, seconds in (("day", DAY), ("30d", THIRTY_DAYS)):
        kept = [call for call in calls if call.ago < timedelta(seconds=seconds)]
        body = await get(client, "/v1/analytics/summary", acme.user(), period=period)
        assert figures(body) == approx_figures(expected(kept, seconds), RELATIVE_ERROR), period
        for key in KEYS[:2]:
            of_key = [call for call in kept if call.key_id == key]
            body = await get(
                client, "/v1/analytics/summary", acme.user(), period=period, key_id=key
            )
            assert figures(body) == approx_figures(expected(of_key, seconds), RELATIVE_ERROR)
    groupings = {
        "key": lambda call: call.key_id,
        "route": lambda call: call.route,
        "status": lambda call: str(call.status),
        "plan": lambda call: "unknown" if call.plan in (None, NO_PLAN) else call.plan,
    }
    for by, group_of in groupings.items():
        body = await get(client, "/v1/analytics/breakdown", acme.user(), period="30d", by=by)
        groups: dict[Any, list[Call]] = {}
        for call in calls:
            groups.setdefault(group_of(call), []).append(call)
        assert body["total_groups"] == len(groups)
        order = sorted(groups, key=lambda name: (-len(groups[name]), name is None, name or ""))
        assert [row["group"] for row in body["data"]] == order, by
        for row in body["data"]:
            assert figures(row) == approx_figures(
                expected(groups[row["group"]], THIRTY_DAYS), RELATIVE_ERROR
            ), (by, row["group"])
    # Filtered by route, grouped by key: nothing of globex's, which used acme's key ids.
    body = await get(
        client, "/v1/analytics/breakdown", acme.user(), period="30d", by="key", route="upload"
    )
    uploads = [call for call in calls if call.route == "upload"]
    assert {row["group"]: row["requests"] for row in body["data"]} == {
        key: sum(call.key_id == key for call in uploads) for key in KEYS
    }


def _migration_0005() -> Any:
    path = (
        Path(tollgate_metering.__file__).parent
        / "migrations/versions/0005_request_analytics_rollup.py"
    )
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_migrations_backfill_gives_the_rows_the_ingestion_wrote(db, acme, month):
    migration = _migration_0005()
    for unit in UNITS:
        written = await rollup_rows(db, acme.org_id, unit)
        async with db() as session, session.begin():
            await session.execute(
                sa.text(
                    f"DELETE FROM metering.request_analytics_{unit} "  # noqa: S608 (fixed names)
                    "WHERE org_id = :org_id"
                ),
                {"org_id": acme.org_id},
            )
            # The migration's own statement, for this organisation only (a constant condition).
            await session.execute(
                sa.text(migration.backfill_sql(unit, f"org_id = '{acme.org_id}'"))
            )
        assert await rollup_rows(db, acme.org_id, unit) == written
    written = await by_dimension_rows(db, acme.org_id)
    assert written
    async with db() as session, session.begin():
        await session.execute(
            sa.text("DELETE FROM metering.request_analytics_day_by WHERE org_id = :org_id"),
            {"org_id": acme.org_id},
        )
        await session.execute(
            sa.text(migration.backfill_by_dimension_sql(f"org_id = '{acme.org_id}'"))
        )
    assert await by_dimension_rows(db, acme.org_id) == written


def test_estimated_percentiles_are_within_the_bound():
    rng = random.Random(5)
    for size in (1, 2, 3, 10, 101, 2000):
        latencies = [random_latency(rng) for _ in range(size)]
        cells: dict[int, int] = {}
        for latency in latencies:
            cells[histogram.position(latency)] = cells.get(histogram.position(latency), 0) + 1
        fractions = (0.5, 0.95, 0.99)
        for fraction, estimate in zip(
            fractions, histogram.percentiles(cells.items(), fractions), strict=True
        ):
            exact = percentile_cont(latencies, fraction)
            assert estimate == pytest.approx(exact, rel=RELATIVE_ERROR), (size, fraction)
    assert histogram.percentiles([], (0.5,)) == (None,)
    # Below 0.1 ms and from 10 minutes on: the edge buckets.
    assert histogram.percentiles([(histogram.position(0.02), 1)], (0.5,)) == (0.05,)
    assert histogram.percentiles([(histogram.position(900_000), 1)], (0.5,)) == (600_000,)


def test_bucket_bounds():
    assert (histogram.position(0.0999), histogram.position(0.1)) == (1, 2)
    assert (histogram.position(599_999.0), histogram.position(600_000)) == (165, 166)
    for position in range(2, 166):
        low = histogram.LOWEST_MS * histogram.GROWTH ** (position - 2)
        assert low / histogram.representative(position) == pytest.approx(1 / math.sqrt(1.1))
        assert histogram.position(low * 1.0001) == position
