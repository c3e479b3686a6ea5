"""Hour and day rollups (ADR 0014): which table answers which part of a query, and migration
0004's backfill from the minute rollups stored before it."""

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_metering.usage.repository import plan_spans
from tollgate_metering.usage.windows import Window, window_boundaries
from tollgate_shared.database import async_database_url
from tollgate_shared.migrations import upgrade

LENGTH = {"_day": timedelta(days=1), "_hour": timedelta(hours=1), "": timedelta(minutes=1)}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def assert_exact_cover(edges: list[datetime], spans: dict[str, list[tuple[datetime, datetime]]]):
    """Every minute of [first, last edge) is read from exactly one table, each bucket read lies
    wholly inside one window, and coarse buckets are whole UTC hours or days."""
    pieces = sorted((start, end, suffix) for suffix, found in spans.items() for start, end in found)
    assert pieces[0][0] == edges[0] and pieces[-1][1] == edges[-1]
    for (_, end, _), (start, _, _) in itertools.pairwise(pieces):
        assert end == start  # no gap, no overlap
    for start, end, suffix in pieces:
        length = LENGTH[suffix]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert (start - epoch) % length == timedelta(0) and (end - epoch) % length == timedelta(0)
        # No window boundary inside a bucket of this span.
        for edge in edges:
            if start < edge < end:
                assert (edge - epoch) % length == timedelta(0)


def test_a_month_of_utc_days_reads_day_rows_only():
    edges = window_boundaries(
        start=at("2026-10-01T00:00"),
        end=at("2026-11-01T00:00"),
        window=Window.DAY,
        zone=ZoneInfo("UTC"),
    )
    assert plan_spans(edges) == {
        "_day": [(at("2026-10-01T00:00"), at("2026-11-01T00:00"))],
        "_hour": [],
        "": [],
    }


def test_edges_inside_hours_and_days_fall_back_to_finer_rows():
    spans = plan_spans([at("2026-10-01T22:17"), at("2026-10-04T03:30")])
    assert spans == {
        "_day": [(at("2026-10-02T00:00"), at("2026-10-04T00:00"))],
        "_hour": [
            (at("2026-10-01T23:00"), at("2026-10-02T00:00")),
            (at("2026-10-04T00:00"), at("2026-10-04T03:00")),
        ],
        "": [
            (at("2026-10-01T22:17"), at("2026-10-01T23:00")),
            (at("2026-10-04T03:00"), at("2026-10-04T03:30")),
        ],
    }


def test_half_hour_zones_split_the_hour_their_days_start_in():
    # Asia/Kolkata days start at 18:30 UTC: no UTC day fits in one, the hour 18:00-19:00 is
    # split between two windows, so its minutes are read instead.
    edges = window_boundaries(
        start=at("2026-10-01T18:30"),
        end=at("2026-10-04T18:30"),
        window=Window.DAY,
        zone=ZoneInfo("Asia/Kolkata"),
    )
    spans = plan_spans(edges)
    assert spans["_day"] == []
    assert spans[""] == [
        (at("2026-10-01T18:30"), at("2026-10-01T19:00")),
        (at("2026-10-02T18:00"), at("2026-10-02T19:00")),
        (at("2026-10-03T18:00"), at("2026-10-03T19:00")),
        (at("2026-10-04T18:00"), at("2026-10-04T18:30")),
    ]
    assert_exact_cover(edges, spans)


@pytest.mark.parametrize("seed", range(40))
def test_random_windows_are_covered_exactly_once(seed):
    rng = random.Random(seed)
    zone = ZoneInfo(rng.choice(["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]))
    window = rng.choice(list(Window))
    start = at("2026-01-01T00:00") + timedelta(minutes=rng.randrange(400 * 1440))
    length = timedelta(minutes=rng.randrange(1, 1440 if window == Window.MINUTE else 20 * 1440))
    edges = window_boundaries(start=start, end=start + length, window=window, zone=zone)
    assert_exact_cover(edges, plan_spans(edges))


ORG = uuid.uuid4()
MINUTES = [
    # bucket_start, group_key, event_count, sum, min, max, latest_time, latest_id, latest_value
    ("2026-06-10T10:00", '{"m": "a"}', 2, 3.5, 1.5, 2, "2026-06-10T10:00:50", "t2", 2),
    ("2026-06-10T10:59", '{"m": "a"}', 1, 4, 4, 4, "2026-06-10T10:59:01", "t4", 4),
    ("2026-06-10T11:00", '{"m": "a"}', 3, 9, 1, 5, "2026-06-10T11:00:59", "t9", 1),
    ("2026-06-10T11:00", '{"m": "b"}', 1, 7, 7, 7, "2026-06-10T11:00:10", "t7", 7),
    ("2026-06-11T00:00", '{"m": "a"}', 1, 1, 1, 1, "2026-06-11T00:00:00", "t1", 1),
]


def test_upgrading_builds_hour_and_day_rollups_from_minute_rollups(new_database):
    database_url = new_database("metering_coarser_backfill")
    upgrade(
        migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE, revision="0003"
    )
    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            for bucket, group, count, total, low, high, latest, latest_id, value in MINUTES:
                connection.execute(
                    sa.text(
                        "INSERT INTO metering.usage_rollups VALUES (:org, 'tokens', :bucket,"
                        " 'c1', CAST(:group AS jsonb), :count, :total, :low, :high, :latest,"
                        " :latest_id, :value)"
                    ),
                    {
                        "org": ORG,
                        "bucket": at(bucket),
                        "group": group,
                        "count": count,
                        "total": total,
                        "low": low,
                        "high": high,
                        "latest": at(latest),
                        "latest_id": latest_id,
                        "value": value,
                    },
                )
            for bucket, value in (
                ("2026-06-10T10:00", '"ann"'),
                ("2026-06-10T10:30", '"ann"'),
                ("2026-06-10T11:00", '"bob"'),
            ):
                connection.execute(
                    sa.text(
                        "INSERT INTO metering.usage_distinct_values VALUES"
                        " (:org, 'seats', :bucket, 'c1', '{}', CAST(:value AS jsonb))"
                    ),
                    {"org": ORG, "bucket": at(bucket), "value": value},
                )
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
        with engine.connect() as connection:
            rollups = {
                unit: [
                    tuple(row)
                    for row in connection.execute(
                        sa.text(
                            "SELECT bucket_start, group_key, event_count, value_sum, value_min,"  # noqa: S608
                            " value_max, latest_event_id, latest_value"
                            f" FROM metering.usage_rollups_{unit}"
                            " ORDER BY bucket_start, group_key"
                        )
                    )
                ]
                for unit in ("hour", "day")
            }
            distinct = {
                unit: [
                    tuple(row)
                    for row in connection.execute(
                        sa.text(
                            "SELECT bucket_start, value"  # noqa: S608
                            f" FROM metering.usage_distinct_values_{unit}"
                            " ORDER BY bucket_start, value"
                        )
                    )
                ]
                for unit in ("hour", "day")
            }
    finally:
        engine.dispose()
    assert rollups["hour"] == [
        (at("2026-06-10T10:00"), {"m": "a"}, 3, 7.5, 1.5, 4, "t4", 4),
        (at("2026-06-10T11:00"), {"m": "a"}, 3, 9, 1, 5, "t9", 1),
        (at("2026-06-10T11:00"), {"m": "b"}, 1, 7, 7, 7, "t7", 7),
        (at("2026-06-11T00:00"), {"m": "a"}, 1, 1, 1, 1, "t1", 1),
    ]
    assert rollups["day"] == [
        (at("2026-06-10T00:00"), {"m": "a"}, 6, 16.5, 1, 5, "t9", 1),
        (at("2026-06-10T00:00"), {"m": "b"}, 1, 7, 7, 7, "t7", 7),
        (at("2026-06-11T00:00"), {"m": "a"}, 1, 1, 1, 1, "t1", 1),
    ]
    assert distinct["hour"] == [
        (at("2026-06-10T10:00"), "ann"),
        (at("2026-06-10T11:00"), "bob"),
    ]
    assert distinct["day"] == [(at("2026-06-10T00:00"), "ann"), (at("2026-06-10T00:00"), "bob")]
