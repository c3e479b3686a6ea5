"""Request analytics over raw events vs over the request analytics rollup (ADR 0017).

    uv run python bench/metering_analytics.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

A fresh database on that server (dropped at the end) is migrated to 0004, gets N `api_requests`
events of one organisation from the gateway over 30 days (20 keys and signed-in users, 10 routes,
a status mix, log-normal latencies with outliers), then migration 0005 creates and backfills the
rollups (timed). Each query of analytics/repository.py runs `--runs` times, the median
reported: from the raw events (the code before the rollups; still the service's path for the
last hour) and from the rollups (the service's path for a day and 30 days). The percentiles of
the busiest group are printed from both, to see the estimate's error.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tollgate_metering.analytics.repository import AnalyticsRepository, Grouping
from tollgate_metering.analytics.schemas import Dimension, Period, TrafficFilters
from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_shared.database import async_database_url
from tollgate_shared.migrations import upgrade

SEED = """
INSERT INTO metering.usage_events (org_id, id, type, subject, time, data, received_at, source)
SELECT CAST(:org AS uuid), 'bench-' || n, 'api_requests', :org, t, jsonb_build_object(
    'key_id', keys[key],
    'route', 'route-' || route,
    'plan', (ARRAY['free', 'pro', 'enterprise'])[1 + key % 3],
    'status', (ARRAY[200,200,200,200,200,200,200,200,200,200,200,200,201,204,304,400,404,429,
                     500,503])[status],
    'latency_ms', round(CASE WHEN n % 97 = 0 THEN 2000 + random() * 60000
        ELSE exp(ln(40) + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) END
        ::numeric, 3),
    'request_bytes', (random() * 4000)::int,
    'response_bytes', (random() * 200000)::int
), t, 'gateway'
FROM (
    SELECT n, now() - random() * interval '30 days' AS t, 1 + (random() * 20.999)::int % 21 AS key,
           (random() * 9.999)::int AS route, 1 + (random() * 19.999)::int % 20 AS status
    FROM generate_series(1, :count) AS n
) AS calls,
    -- 20 keys and signed-in users (a null key_id)
    (SELECT array_agg(gen_random_uuid()::text) || ARRAY[NULL] AS keys
     FROM generate_series(1, 20)) AS k
"""

ROUTE = TrafficFilters(route="route-3")
CASES: list[tuple[str, Period, Grouping, TrafficFilters]] = [
    ("summary", Period.HOUR, None, TrafficFilters()),
    ("summary", Period.DAY, None, TrafficFilters()),
    ("summary", Period.THIRTY_DAYS, None, TrafficFilters()),
    ("summary route=route-3", Period.THIRTY_DAYS, None, ROUTE),
    ("breakdown by key", Period.DAY, Dimension.KEY, TrafficFilters()),
    ("breakdown by key", Period.THIRTY_DAYS, Dimension.KEY, TrafficFilters()),
    ("breakdown by status", Period.THIRTY_DAYS, Dimension.STATUS, TrafficFilters()),
    ("breakdown by route", Period.THIRTY_DAYS, Dimension.ROUTE, TrafficFilters()),
    ("by key, route=route-3", Period.THIRTY_DAYS, Dimension.KEY, ROUTE),
    ("admin: organisations", Period.THIRTY_DAYS, "organization", TrafficFilters()),
]


async def measure(database_url: str, org: uuid.UUID, runs: int) -> None:
    engine = create_async_engine(async_database_url(database_url))
    sessions = async_sessionmaker(engine)
    print(f"{'query':<22}{'period':>7}{'raw ms':>10}{'rollup ms':>11}   p50/p95/p99 raw | rollup")
    for name, period, group_by, filters in CASES:
        now = datetime.now(UTC)
        results: dict[bool, tuple[float, object]] = {}
        for from_rollup in (False, True):
            timings, rows = [], []
            for _ in range(runs):
                async with sessions() as session:
                    started = time.perf_counter()
                    rows = await AnalyticsRepository(session).traffic(
                        org_id=None if group_by == "organization" else org,
                        time_from=now - period.length,
                        time_to=now,
                        filters=filters,
                        group_by=group_by,
                        limit=100,
                        from_rollup=from_rollup,
                    )
                    timings.append((time.perf_counter() - started) * 1000)
            top = rows[0].latency_percentiles if rows else None
            results[from_rollup] = (statistics.median(timings), top)
        raw_ms, raw_p = results[False]
        rollup_ms, rollup_p = results[True]

        def fmt(p: object) -> str:
            return "/".join(f"{v:.1f}" for v in p) if isinstance(p, tuple) else "-"

        print(
            f"{name:<22}{period.value:>7}{raw_ms:>10.1f}{rollup_ms:>11.1f}   "
            f"{fmt(raw_p)} | {fmt(rollup_p)}"
        )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a server to create a database on")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database (printed)")
    args = parser.parse_args()
    name = f"bench_analytics_{uuid.uuid4().hex[:8]}"
    base, _, _ = args.database_url.rpartition("/")
    database_url = f"{base}/{name}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(
            migrations_dir=MIGRATIONS_DIR,
            database_url=database_url,
            schema="metering",
            revision="0004",
        )
        org = uuid.uuid4()
        with psycopg.connect(database_url, autocommit=True) as connection:
            started = time.perf_counter()
            connection.execute(
                SEED.replace("%", "%%").replace(":org", "%(org)s").replace(":count", "%(count)s"),
                {"org": str(org), "count": args.events},
            )
            connection.execute("VACUUM ANALYZE metering.usage_events")
            print(f"seeded {args.events} events in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="metering")
        print(f"migration 0005 (backfill) in {time.perf_counter() - started:.1f} s")
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE metering.request_analytics_hour")
            connection.execute("VACUUM ANALYZE metering.request_analytics_day")
            connection.execute("VACUUM ANALYZE metering.request_analytics_day_by")
            for unit in ("hour", "day", "day_by"):
                rows, size = connection.execute(
                    f"SELECT count(*), pg_size_pretty(pg_total_relation_size("  # noqa: S608
                    f"'metering.request_analytics_{unit}')) FROM metering.request_analytics_{unit}"
                ).fetchone() or (0, "")
                print(f"{unit} rollup: {rows} rows, {size}")
            raw = connection.execute(
                "SELECT pg_size_pretty(pg_total_relation_size('metering.usage_events'))"
            ).fetchone()
            print(f"raw events: {raw[0] if raw else '?'}")
        asyncio.run(measure(database_url, org, args.runs))
    finally:
        if args.keep:
            print(f"kept: {database_url}")
        else:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
