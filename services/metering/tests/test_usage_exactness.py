"""Every usage answer equals the same aggregation computed here from the distinct raw events,
whatever the batches, duplicates (re-sent with other values) and late arrivals; and keeps
doing so once the raw events are gone."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tollgate_metering.usage.schemas import _json_number

from .conftest import create_meter

SUBJECTS = ["c1", "c2", "c3"]
MODELS = ["small", "large"]
DISTINCT_CHOICES = ["a", "b", "c", 1, 2, "1", 2.5]


def random_events(seed: int, now: datetime, unique: bool) -> list[dict]:
    """300 events over the last three days, sent in shuffled order (so many arrive late)."""
    rng = random.Random(seed)
    events = []
    for number in range(300):
        data = {"model": rng.choice(MODELS)}
        if rng.random() < 0.7:  # the others lack region: their group value is null
            data["region"] = rng.choice(["eu", "us"])
        if unique:
            data["value"] = rng.choice(DISTINCT_CHOICES)
        else:
            data["value"] = rng.choice([rng.randint(0, 1000), round(rng.uniform(0, 100), 3)])
        moment = now - timedelta(seconds=rng.randint(60, 3 * 86400))
        # A few events share a time, so LATEST must break the tie by id.
        if number % 25 == 0 and events:
            moment = datetime.fromisoformat(events[-1]["time"])
        events.append(
            {
                "id": f"evt-{number:04d}",
                "type": "measured",
                "subject": rng.choice(SUBJECTS),
                "time": moment.isoformat(),
                "data": data,
            }
        )
    return events


def batches_with_duplicates(events: list[dict], seed: int) -> list[list[dict]]:
    """Batches of 50; each also re-sends 10 events of earlier batches with other values (they
    must count for nothing) and repeats 5 of its own (counted once)."""
    rng = random.Random(seed)
    batches = []
    for start in range(0, len(events), 50):
        batch = list(events[start : start + 50])
        batch += rng.sample(batch, 5)
        for earlier in rng.sample(events[:start], min(start, 10)):
            batch.append({**earlier, "data": {**earlier["data"], "value": 999, "model": "x"}})
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def expected_value(aggregation: str, events: list[dict]):
    values = [event["data"]["value"] for event in events]
    if aggregation == "COUNT":
        return len(events)
    if aggregation == "UNIQUE_COUNT":
        return len(set(values))
    # As PostgreSQL reads the JSON text of the value: exact decimals, never binary floats.
    numbers = [Decimal(repr(value)) for value in values]
    if aggregation == "SUM":
        return _json_number(sum(numbers, Decimal(0)))
    if aggregation == "MIN":
        return _json_number(min(numbers))
    if aggregation == "MAX":
        return _json_number(max(numbers))
    latest = max(events, key=lambda event: (datetime.fromisoformat(event["time"]), event["id"]))
    return _json_number(Decimal(repr(latest["data"]["value"])))


def expected_windows(events, aggregation, *, start, end, window, zone, key):
    """Windows computed the plain way: truncate each event's local time."""
    groups: dict[tuple, list[dict]] = {}
    for event in events:
        local = datetime.fromisoformat(event["time"]).astimezone(zone)
        if window == "hour":
            local = local.replace(minute=0, second=0, microsecond=0)
        elif window == "day":
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        window_start = max(local.astimezone(UTC), start)
        groups.setdefault((window_start, *key(event)), []).append(event)
    return {group: expected_value(aggregation, members) for group, members in groups.items()}


def answered_windows(body, key_names):
    return {
        (
            datetime.fromisoformat(row["window_start"]),
            *(row["subject"] if name == "subject" else row["group"][name] for name in key_names),
        ): row["value"]
        for row in body["data"]
    }


@pytest.mark.parametrize("aggregation", ["SUM", "COUNT", "MIN", "MAX", "LATEST", "UNIQUE_COUNT"])
async def test_rollup_answers_equal_the_raw_events(client, acme, db, aggregation):
    await create_meter(
        client,
        acme,
        key="measured",
        aggregation=aggregation,
        value_property=None if aggregation == "COUNT" else "value",
        group_by=["model", "region"],
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = random_events(seed=len(aggregation), now=now, unique=aggregation == "UNIQUE_COUNT")
    for batch in batches_with_duplicates(events, seed=7):
        response = await client.post("/v1/events", json=batch, headers=acme.key("write"))
        assert response.status_code == 200, response.text
    start = now - timedelta(days=4)
    end = now + timedelta(minutes=10)
    queries = [
        ("hour", "UTC", {}, [], lambda event: ()),
        # UTC days and months: whole days come from the day rollups, the edges from hours and
        # minutes (ADR 0014).
        (
            "day",
            "UTC",
            {"group_by": ["model", "region"]},
            ["model", "region"],
            lambda e: (e["data"]["model"], e["data"].get("region")),
        ),
        ("month", "UTC", {"subject": ["c3"]}, ["subject"], lambda e: (e["subject"],)),
        (
            "day",
            "Asia/Kolkata",
            {"group_by": ["model"]},
            ["model"],
            lambda e: (e["data"]["model"],),
        ),
        (
            "day",
            "America/New_York",
            {"group_by": ["region"], "subject": ["c1", "c2"]},
            ["subject", "region"],
            lambda event: (event["subject"], event["data"].get("region")),
        ),
    ]

    async def answers():
        found = []
        for window, tz, extra, _, _ in queries:
            response = await client.get(
                "/v1/meters/measured/usage",
                params={
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                    "window": window,
                    "tz": tz,
                    **extra,
                },
                headers=acme.key("read"),
            )
            assert response.status_code == 200, response.text
            found.append(response.json())
        return found

    # The hour and day rollups hold exactly what their minutes hold.
    await assert_coarser_rollups_match_minutes(
        db, acme.org_id, unique=aggregation == "UNIQUE_COUNT"
    )
    before = await answers()
    for body, (window, tz, extra, names, key) in zip(before, queries, strict=True):
        chosen = [e for e in events if e["subject"] in extra.get("subject", SUBJECTS)]
        expected = expected_windows(
            chosen, aggregation, start=start, end=end, window=window, zone=ZoneInfo(tz), key=key
        )
        assert answered_windows(body, names) == expected

    # Queries read rollups only: without the raw events the answers stay the same.
    async with db() as session, session.begin():
        await session.execute(
            sa.text("DELETE FROM metering.usage_events WHERE org_id = :org"), {"org": acme.org_id}
        )
    assert await answers() == before


COARSER = {
    "usage_rollups": """
        SELECT org_id, meter_key, date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC'),
               subject, group_key, sum(event_count), sum(value_sum), min(value_min),
               max(value_max), max(latest_time),
               (array_agg(latest_event_id ORDER BY latest_time DESC, latest_event_id DESC))[1],
               (array_agg(latest_value ORDER BY latest_time DESC, latest_event_id DESC))[1]
        FROM metering.usage_rollups WHERE org_id = :org GROUP BY 1, 2, 3, 4, 5
    """,
    "usage_distinct_values": """
        SELECT DISTINCT org_id, meter_key, date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC'),
               subject, group_key, value
        FROM metering.usage_distinct_values WHERE org_id = :org
    """,
}


async def assert_coarser_rollups_match_minutes(db, org_id, *, unique: bool) -> None:
    async with db() as session:
        for table, from_minutes in COARSER.items():
            for unit in ("hour", "day"):
                stored = f"""
                    SELECT org_id, meter_key, bucket_start AT TIME ZONE 'UTC', subject,
                           group_key, {
                    "value"
                    if "distinct" in table
                    else "event_count, value_sum, value_min, value_max, latest_time,"
                    " latest_event_id, latest_value"
                }
                    FROM metering.{table}_{unit} WHERE org_id = :org
                """  # noqa: S608 (fixed names only)
                rows = (await session.execute(sa.text(stored), {"org": org_id})).all()
                expected = (
                    await session.execute(sa.text(from_minutes.format(unit=unit)), {"org": org_id})
                ).all()
                assert sorted(map(tuple, rows), key=repr) == sorted(
                    map(tuple, expected), key=repr
                ), f"{table}_{unit}"
                assert rows or (table == "usage_rollups") == unique, f"{table}_{unit} is empty"
