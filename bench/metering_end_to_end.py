"""Metering end to end: durable ingestion rate (HTTP batches and NATS) against the raw ceilings
(JetStream publish+consume alone, PostgreSQL COPY alone), event-to-queryable latency, and usage
query latency over a seeded history of rollups, in one run.

    make bench-metering                           # or: uv run python bench/metering_end_to_end.py
    make bench-metering BENCH_ARGS="--quick"      # a smoke run in about a minute
    make bench-metering BENCH_ARGS="--help"

What runs: a real `tollgate-metering serve` process (python -m tollgate_metering.cli serve, one
uvicorn process, as the launcher starts it) on a fresh database, with its usage consumer on the
USAGE stream. The bench talks to it over HTTP like the gateway would (identity tokens signed
with a key pair of its own) and publishes gateway usage events to its NATS server.

PostgreSQL: a fresh database on the server of --database-url / TOLLGATE_DATABASE_URL (dropped at
the end), else an embedded server. NATS: --nats-url, else always an embedded server of the
bench's own, because the bench fills the USAGE stream and any other metering consumer on a shared
server (a test run's) would receive those events.

Every ingestion figure is checked: the stored events and the rollups' event counts must equal
what was sent, duplicates (re-sent on purpose) excluded.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
from harness import cleanup_on_exit, progress
from machine import describe_machine
from metering_usage_consumer import fresh_database
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from sqlalchemy.engine import make_url

from tollgate_local.processes import ManagedProcess
from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_metering.gateway_usage.handlers import USAGE_RECORDED
from tollgate_shared.embedded import EmbeddedNats, free_port
from tollgate_shared.events.streams import USAGE_STREAM, ensure_stream, usage_stream
from tollgate_shared.identity import IDENTITY_HEADER, Identity, generate_keypair, identity_signer
from tollgate_shared.migrations import upgrade

MODELS = ("small", "medium", "large")
REGIONS = ("eu", "us")
METER = "llm_tokens"
HTTP_BATCH = 1000
PROBE_TIMEOUT_SECONDS = 30
KEYS_PER_ORGANIZATION = 5


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--events", type=int, default=200_000, help="per ingestion path")
    parser.add_argument("--ceiling-events", type=int, default=200_000, help="per ceiling")
    parser.add_argument("--organizations", type=int, default=10, help="ingestion spread")
    parser.add_argument("--http-concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--duplicate-share", type=float, default=0.05, help="batches re-sent")
    parser.add_argument("--steady-rate", type=int, default=1_000, help="events/s, latency runs")
    parser.add_argument("--probes", type=int, default=100, help="latency probes per path")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="seeded history: 1.0 = rollups of 100 million raw events",
    )
    parser.add_argument("--query-repeats", type=int, default=50, help="per query kind")
    parser.add_argument("--skip", action="append", default=[], choices=["ingest", "query"])
    parser.add_argument("--database-url", help="default: TOLLGATE_DATABASE_URL, else embedded")
    parser.add_argument("--nats-url", help="default: an embedded server of the bench's own")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.events = min(arguments.events, 20_000)
        arguments.ceiling_events = min(arguments.ceiling_events, 20_000)
        arguments.probes = min(arguments.probes, 30)
        arguments.scale = min(arguments.scale, 0.01)
        arguments.query_repeats = min(arguments.query_repeats, 10)
    return arguments


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


@dataclass
class Rate:
    name: str
    events: int
    seconds: float
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


@dataclass
class Latencies:
    name: str
    milliseconds: list[float] = field(default_factory=list)
    note: str = ""


# --- the metering process and its clients -------------------------------------------------------


class Metering:
    """The service as a real process, and the bench's way to act as its callers."""

    def __init__(self, *, database_url: str, nats_url: str, log_dir: Path) -> None:
        private_key, public_key = generate_keypair()
        self.signer = identity_signer(private_key, ttl_seconds=3600)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            name="metering-bench",
            module="tollgate_metering.cli",
            args=["serve", "--port", str(self.port)],
            env={
                "TOLLGATE_ENV": "test",
                "TOLLGATE_LOG_FORMAT": "json",
                "TOLLGATE_LOG_LEVEL": "WARNING",
                "TOLLGATE_DATABASE_URL": database_url,
                "TOLLGATE_NATS_URL": nats_url,
                "TOLLGATE_IDENTITY_PUBLIC_KEY": public_key,
            },
            log_dir=log_dir,
        )

    def start(self) -> None:
        self.process.start()
        self.process.wait_until_ready(f"{self.url}/readyz", timeout=60)

    def headers(self, org_id: uuid.UUID, *, admin: bool = False) -> dict[str, str]:
        identity = (
            Identity(
                principal_type="user",
                principal_id=str(uuid.uuid4()),
                org_id=org_id,
                roles=frozenset({"org_admin"}),
            )
            if admin
            else Identity(
                principal_type="key",
                principal_id=str(uuid.uuid4()),
                org_id=org_id,
                scopes=frozenset({"read", "write"}),
            )
        )
        return {
            IDENTITY_HEADER: self.signer.sign(identity.to_claims()),
            "content-type": "application/json",
        }


async def create_meter(http: httpx.AsyncClient, metering: Metering, org_id: uuid.UUID) -> None:
    response = await http.post(
        "/v1/meters",
        json={
            "key": METER,
            "name": "LLM tokens",
            "aggregation": "SUM",
            "value_property": "tokens",
            "group_by": ["model", "region"],
        },
        headers=metering.headers(org_id, admin=True),
    )
    if response.status_code != 201:
        raise RuntimeError(f"meter not created: {response.status_code} {response.text}")


def api_event(rng: random.Random, moment: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": METER,
        "subject": f"customer-{rng.randrange(100)}",
        "time": moment.isoformat(),
        "data": {
            "tokens": rng.randint(1, 2000),
            "model": rng.choice(MODELS),
            "region": rng.choice(REGIONS),
        },
    }


def gateway_event(org_id: uuid.UUID, moment: datetime) -> tuple[str, bytes]:
    """A usage event as the gateway publishes it (docs/events.md): (id, body)."""
    request_id = uuid.uuid4().hex
    stamp = moment.isoformat()
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": request_id,
            "source": "/tollgate/gateway",
            "type": USAGE_RECORDED,
            "time": stamp,
            "datacontenttype": "application/json",
            "orgid": str(org_id),
            "data": {
                "request_id": request_id,
                "organization_id": str(org_id),
                "principal_type": "key",
                # An organisation calls with a few keys: the api_requests meter groups by key.
                "key_id": str(uuid.uuid5(org_id, f"key-{random.randrange(KEYS_PER_ORGANIZATION)}")),
                "user_id": None,
                "route": "demo",
                "meter": "api_requests",
                "method": "GET",
                "status": 200,
                "latency_ms": 2.417,
                "request_bytes": 0,
                "response_bytes": 71,
                "timestamp": stamp,
            },
        }
    ).encode()
    return request_id, body


async def publish_all(
    js: JetStreamContext, subject: str, messages: Sequence[tuple[str, bytes]]
) -> None:
    """Publish with up to 1,000 acks awaited at once (as the gateway's batches do)."""
    for start in range(0, len(messages), 1000):
        await asyncio.gather(
            *(
                js.publish(subject, body, headers={"Nats-Msg-Id": message_id})
                for message_id, body in messages[start : start + 1000]
            )
        )


# --- raw ceilings -------------------------------------------------------------------------------


async def jetstream_ceiling(client: NatsClient, events: int) -> Rate:
    """Publish (acked, with Nats-Msg-Id, file storage) while one pull consumer fetches batches
    and acks each message; the clock stops at the last ack."""
    js = client.jetstream()
    token = uuid.uuid4().hex[:8]
    stream, subject = f"BENCH_CEILING_{token}", f"bench.{token}.usage"
    await js.add_stream(
        StreamConfig(
            name=stream,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=600,
        )
    )
    org = uuid.uuid4()
    now = datetime.now(UTC)
    messages = [gateway_event(org, now) for _ in range(events)]
    try:
        subscription = await js.pull_subscribe(
            subject,
            durable="ceiling",
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000),
        )
        started = time.perf_counter()
        publisher = asyncio.create_task(publish_all(js, subject, messages))
        consumed = 0
        while consumed < events:
            try:
                batch = await subscription.fetch(1000, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                if publisher.done():
                    publisher.result()  # the publisher failed: show why
                continue
            for message in batch:
                await message.ack()
            consumed += len(batch)
        seconds = time.perf_counter() - started
        await publisher
        await subscription.unsubscribe()
    finally:
        await js.delete_stream(stream)
    return Rate("JetStream publish + consume alone", events, seconds, "1 publisher, 1 consumer")


async def copy_ceiling(database_url: str, events: int, connections: int) -> Rate:
    """COPY (binary) in transactions of 1,000 rows into a table shaped like usage_events (its
    primary key and indexes included), from several connections at once, synchronous commit."""
    plain = (
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    table = f"bench_copy_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        await connection.execute(
            f"CREATE TABLE metering.{table} (LIKE metering.usage_events INCLUDING ALL)"
        )
    rng = random.Random(1)
    now = datetime.now(UTC)
    orgs = [uuid.uuid4() for _ in range(10)]
    rows = [
        (
            orgs[index % len(orgs)],
            uuid.uuid4().hex,
            METER,
            f"customer-{rng.randrange(100)}",
            now,
            json.dumps(api_event(rng, now)["data"]),
            now,
            "api",
        )
        for index in range(events)
    ]
    chunks = [rows[start : start + 1000] for start in range(0, len(rows), 1000)]

    async def worker(mine: list[list[tuple[Any, ...]]]) -> None:
        async with await psycopg.AsyncConnection.connect(plain) as connection:
            for chunk in mine:
                statement = (
                    f"COPY metering.{table} (org_id, id, type, subject, time, data, "
                    "received_at, source) FROM STDIN"
                )
                async with (
                    connection.transaction(),
                    connection.cursor() as cursor,
                    cursor.copy(statement) as copy,
                ):
                    for row in chunk:
                        await copy.write_row(row)

    started = time.perf_counter()
    await asyncio.gather(*(worker(chunks[index::connections]) for index in range(connections)))
    seconds = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        counted = f"SELECT count(*) FROM metering.{table}"  # noqa: S608
        row = await (await connection.execute(counted)).fetchone()
        stored = row[0] if row else 0
        await connection.execute(f"DROP TABLE metering.{table}")
    if stored != events:
        raise RuntimeError(f"COPY ceiling: {stored} rows for {events}")
    return Rate(
        "PostgreSQL COPY alone (usage_events' shape)",
        events,
        seconds,
        f"{connections} connections, 1,000 rows per transaction",
    )


# --- metering ingestion -------------------------------------------------------------------------


async def scalar(database_url: str, query: str, *parameters: Any) -> Any:
    plain = (
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        row = await (await connection.execute(query, parameters)).fetchone()
        return row[0] if row else None


async def verify_stored(database_url: str, *, source: str, meter: str, expected: int) -> None:
    stored = await scalar(
        database_url, "SELECT count(*) FROM metering.usage_events WHERE source = %s", source
    )
    rolled = await scalar(
        database_url,
        "SELECT coalesce(sum(event_count), 0) FROM metering.usage_rollups WHERE meter_key = %s",
        meter,
    )
    if (stored, rolled) != (expected, expected):
        raise RuntimeError(
            f"{source}: {expected:,} distinct events sent, {stored:,} stored, {rolled:,} rolled up"
        )
    progress(f"{source}: {stored:,} stored once and rolled up once (checked)")


async def http_ingestion(
    http: httpx.AsyncClient,
    metering: Metering,
    database_url: str,
    orgs: list[uuid.UUID],
    *,
    events: int,
    concurrency: int,
    duplicate_share: float,
) -> Rate:
    """Batches of 1,000 events, some batches sent twice (the copy must count for nothing)."""
    rng = random.Random(2)
    now = datetime.now(UTC)
    bodies: list[tuple[uuid.UUID, bytes]] = []
    for number, start in enumerate(range(0, events, HTTP_BATCH)):
        org = orgs[number % len(orgs)]
        batch = [
            api_event(rng, now - timedelta(seconds=rng.randint(0, 3600)))
            for _ in range(min(HTTP_BATCH, events - start))
        ]
        bodies.append((org, json.dumps(batch).encode()))
    repeats = (
        [bodies[index] for index in range(0, len(bodies), max(1, round(1 / duplicate_share)))]
        if duplicate_share > 0
        else []
    )
    queue = bodies + repeats
    rng.shuffle(queue)
    headers = {org: metering.headers(org) for org in orgs}
    inserted = 0
    duplicates = 0

    async def sender(mine: list[tuple[uuid.UUID, bytes]]) -> None:
        nonlocal inserted, duplicates
        for org, body in mine:
            response = await http.post("/v1/events", content=body, headers=headers[org])
            if response.status_code != 200:
                raise RuntimeError(f"POST /v1/events: {response.status_code} {response.text[:300]}")
            result = response.json()
            inserted += result["inserted"]
            duplicates += result["duplicates"]

    progress(f"HTTP: {len(queue)} batches ({len(repeats)} re-sent), {concurrency} in flight")
    started = time.perf_counter()
    await asyncio.gather(*(sender(queue[index::concurrency]) for index in range(concurrency)))
    seconds = time.perf_counter() - started
    if inserted != events or duplicates != sum(len(json.loads(body)) for _, body in repeats):
        raise RuntimeError(f"HTTP: answers said {inserted:,} inserted, {duplicates:,} duplicates")
    await verify_stored(database_url, source="api", meter=METER, expected=events)
    sent = events + duplicates
    return Rate(
        "metering: POST /v1/events, batches of 1,000",
        sent,
        seconds,
        f"{concurrency} in flight; {duplicates:,} of the {sent:,} were duplicates",
    )


async def wait_for_consumer(js: JetStreamContext, durable: str, last_sequence: int) -> None:
    while True:
        info = await js.consumer_info(USAGE_STREAM, durable)
        if info.ack_floor.stream_seq >= last_sequence:
            return
        await asyncio.sleep(0.02)


async def nats_ingestion(
    js: JetStreamContext, database_url: str, orgs: list[uuid.UUID], *, events: int
) -> Rate:
    """Publish to USAGE while metering's consumer stores; the clock stops when JetStream has the
    consumer's ack of the last message (acked only after its transaction committed)."""
    now = datetime.now(UTC)
    messages = [gateway_event(orgs[index % len(orgs)], now) for index in range(events)]
    progress(f"NATS: publishing {events:,} usage events while metering consumes")
    started = time.perf_counter()
    await publish_all(js, USAGE_RECORDED, messages)
    published = time.perf_counter()
    last = (await js.stream_info(USAGE_STREAM)).state.last_seq
    # What was still unacked when the publisher finished drains at the consumer's own pace.
    floor = (await js.consumer_info(USAGE_STREAM, "metering-usage")).ack_floor.stream_seq
    await wait_for_consumer(js, "metering-usage", last)
    finished = time.perf_counter()
    seconds = finished - started
    await verify_stored(database_url, source="gateway", meter="api_requests", expected=events)
    backlog = last - floor
    drain = (
        f"; {backlog:,} left unacked then, drained at {backlog / (finished - published):,.0f}/s"
        if backlog > 1000
        else ""
    )
    return Rate(
        "metering: USAGE stream -> usage consumer",
        events,
        seconds,
        f"published concurrently in {published - started:.1f} s"
        f" ({events / (published - started):,.0f}/s){drain}",
    )


# --- event to queryable -------------------------------------------------------------------------


async def usage_count(
    http: httpx.AsyncClient, headers: dict[str, str], meter: str, start: datetime, end: datetime
) -> int:
    response = await http.get(
        f"/v1/meters/{meter}/usage",
        params={"from": start.isoformat(), "to": end.isoformat(), "window": "day"},
        headers=headers,
    )
    if response.status_code != 200:
        raise RuntimeError(f"usage query: {response.status_code} {response.text[:300]}")
    return int(sum(window["value"] for window in response.json()["data"]))


async def background_load(
    rate: int, send: Callable[[int], Awaitable[None]], stop: asyncio.Event
) -> None:
    """rate events/s in 20 slices a second."""
    per_tick = max(1, rate // 20)
    next_tick = time.perf_counter()
    while not stop.is_set():
        await send(per_tick)
        next_tick += 0.05
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))


async def latency_run(
    name: str,
    *,
    probes: int,
    rate: int,
    send_probe: Callable[[int], Awaitable[None]],
    read_count: Callable[[], Awaitable[int]],
    send_load: Callable[[int], Awaitable[None]],
) -> Latencies:
    """One probe event at a time to an organisation of its own, under a steady load to others:
    the clock starts before the probe is sent and stops when the usage query counts it."""
    stop = asyncio.Event()
    loader = asyncio.create_task(background_load(rate, send_load, stop))
    result = Latencies(name, note=f"under {rate:,} events/s of other traffic")
    try:
        await asyncio.sleep(1)
        for number in range(1, probes + 1):
            started = time.perf_counter()
            await send_probe(number)
            while await read_count() < number:
                if loader.done():
                    loader.result()
                if time.perf_counter() - started > PROBE_TIMEOUT_SECONDS:
                    # Not keeping up with the steady load: say so rather than wait for ever.
                    result.note += f"; probe {number} not visible after {PROBE_TIMEOUT_SECONDS} s"
                    result.milliseconds.append(PROBE_TIMEOUT_SECONDS * 1000)
                    return result
            result.milliseconds.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await loader
    return result


# --- usage queries over a seeded history --------------------------------------------------------


@dataclass(frozen=True)
class HistoryShape:
    organizations: int
    subjects: int  # per organisation
    groups: int  # (model, region) pairs in use per subject
    days: int
    rows_per_series: int  # active minutes per (subject, group) over the history
    events_per_row: int

    @classmethod
    def at_scale(cls, scale: float) -> "HistoryShape":
        # 1.0: 10 orgs x 100 subjects x 6 groups = 6,000 series, 40 days; each series is active
        # in 1,667 of the 57,600 minutes with 10 events each: 10 million minute rows, 100 million
        # events. Scale shrinks the activity and the organisations, never the days.
        organizations = max(1, min(10, round(10 * scale**0.5)))
        series = organizations * 100 * 6
        rows = max(1, round(scale * 10_000_000 / series))
        return cls(organizations, 100, 6, 40, rows, 10)

    @property
    def minute_rows(self) -> int:
        return self.organizations * self.subjects * self.groups * self.rows_per_series

    @property
    def events(self) -> int:
        return self.minute_rows * self.events_per_row


SEED_MINUTES = """
INSERT INTO metering.usage_rollups (
    org_id, meter_key, bucket_start, subject, group_key,
    event_count, value_sum, value_min, value_max, latest_time, latest_event_id, latest_value
)
SELECT org_id, %(meter)s, bucket_start, subject, group_key,
       %(events_per_row)s, %(events_per_row)s * 1000 + series %% 997, 1 + series %% 7,
       1990 + series %% 11, bucket_start + interval '59 seconds',
       'seed-' || series || '-' || position, 1000 + position %% 13
FROM (
    SELECT org.org_id, org.number * 1000000 + subject * 10 + grp AS series,
           'customer-' || subject AS subject,
           jsonb_build_object(
               'model', (ARRAY['small', 'medium', 'large'])[1 + grp %% 3],
               'region', (ARRAY['eu', 'us'])[1 + grp / 3]
           ) AS group_key,
           position,
           %(start)s + make_interval(mins => (
               position * %(step)s + (subject * 7 + grp * 3 + position * 13) %% %(step)s
           )::int) AS bucket_start
    FROM unnest(%(orgs)s::uuid[]) WITH ORDINALITY AS org (org_id, number),
         generate_series(0, %(subjects)s - 1) AS subject,
         generate_series(0, %(groups)s - 1) AS grp,
         generate_series(0, %(rows)s - 1) AS position
) AS seeded
ORDER BY org_id, bucket_start, subject, group_key
"""


async def seed_history(
    database_url: str, orgs: list[uuid.UUID], shape: HistoryShape, end: datetime
) -> float:
    """Minute rollup rows straight into the table (as years of ingestion would leave them)."""
    minutes = shape.days * 1440
    start = end - timedelta(days=shape.days)
    step = max(1, minutes // shape.rows_per_series)
    plain = (
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        await connection.execute("SET work_mem = '256MB'")
        await connection.execute(
            SEED_MINUTES,
            {
                "meter": METER,
                "events_per_row": shape.events_per_row,
                "start": start,
                "step": step,
                "orgs": orgs,
                "subjects": shape.subjects,
                "groups": shape.groups,
                "rows": shape.rows_per_series,
            },
        )
        for unit in ("hour", "day"):
            table = f"metering.usage_rollups_{unit}"
            exists = await (await connection.execute("SELECT to_regclass(%s)", [table])).fetchone()
            if exists and exists[0]:  # the schema has coarser rollups (migration 0004)
                await connection.execute(
                    COARSER_SEED.format(table=table, unit=unit), {"orgs": orgs}
                )
                await connection.execute(f"VACUUM ANALYZE {table}")
        await connection.execute("VACUUM ANALYZE metering.usage_rollups")
    return time.perf_counter() - started


# Coarser rollups, when the schema has them, from the seeded minute rows as ingestion would
# have kept them (the sums migration 0004 backfills).
COARSER_SEED = """
INSERT INTO {table}
SELECT org_id, meter_key, date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       subject, group_key, sum(event_count), sum(value_sum), min(value_min), max(value_max),
       max(latest_time),
       (array_agg(latest_event_id ORDER BY latest_time DESC, latest_event_id DESC))[1],
       (array_agg(latest_value ORDER BY latest_time DESC, latest_event_id DESC))[1]
FROM metering.usage_rollups
WHERE org_id = ANY(%(orgs)s::uuid[])
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""


@dataclass(frozen=True)
class QueryKind:
    name: str
    path: str
    params: dict[str, Any]


def query_kinds(end: datetime) -> list[QueryKind]:
    to = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    month = to - timedelta(days=30)
    return [
        QueryKind(
            "1 subject, 30 days, day windows (UTC)",
            f"/v1/meters/{METER}/usage",
            {"from": month, "to": to, "window": "day", "subject": "customer-7"},
        ),
        QueryKind(
            "1 subject, 30 days, day windows, by model, Asia/Kolkata",
            f"/v1/meters/{METER}/usage",
            {
                "from": month,
                "to": to,
                "window": "day",
                "subject": "customer-7",
                "group_by": "model",
                "tz": "Asia/Kolkata",
            },
        ),
        QueryKind(
            "1 subject, 24 hours, hour windows",
            f"/v1/meters/{METER}/usage",
            {"from": to - timedelta(days=1), "to": to, "window": "hour", "subject": "customer-7"},
        ),
        QueryKind(
            "whole organisation, 30 days, one month window",
            f"/v1/meters/{METER}/usage",
            {"from": month, "to": to, "window": "month"},
        ),
        QueryKind(
            "whole organisation, 30 days, day windows by region",
            f"/v1/meters/{METER}/usage",
            {"from": month, "to": to, "window": "day", "group_by": "region"},
        ),
        QueryKind("GET /v1/usage (this month, every subject)", "/v1/usage", {}),
    ]


async def query_latencies(
    http: httpx.AsyncClient, metering: Metering, orgs: list[uuid.UUID], end: datetime, repeats: int
) -> list[Latencies]:
    results = []
    for kind in query_kinds(end):
        latencies = Latencies(kind.name)
        params = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in kind.params.items()
        }
        for repeat in range(repeats + 2):
            org = orgs[repeat % len(orgs)]
            started = time.perf_counter()
            response = await http.get(kind.path, params=params, headers=metering.headers(org))
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or not response.json()["data"]:
                raise RuntimeError(f"{kind.name}: {response.status_code} {response.text[:300]}")
            if repeat >= 2:  # the first two warm the caches and the connection pool
                latencies.milliseconds.append(elapsed)
        latencies.note = f"{len(response.json()['data'])} rows answered"
        results.append(latencies)
        progress(
            f"query {kind.name}: p50 {percentile(latencies.milliseconds, 0.5):.1f} ms,"
            f" p99 {percentile(latencies.milliseconds, 0.99):.1f} ms"
        )
    return results


# --- the run ------------------------------------------------------------------------------------


async def run(
    arguments: argparse.Namespace, database_url: str, nats_url: str, metering: Metering
) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await ensure_stream(js, usage_stream())
    rates: list[Rate] = []
    latencies: list[Latencies] = []
    queries: list[Latencies] = []
    seeding: tuple[HistoryShape, float] | None = None
    async with httpx.AsyncClient(base_url=metering.url, timeout=120) as http:
        orgs = [uuid.uuid4() for _ in range(arguments.organizations)]
        probe_org = uuid.uuid4()
        for org in [*orgs, probe_org]:
            await create_meter(http, metering, org)
        if "ingest" not in arguments.skip:
            progress("ceiling: JetStream publish + consume")
            jetstream = await jetstream_ceiling(client, arguments.ceiling_events)
            progress("ceiling: PostgreSQL COPY")
            copy = await copy_ceiling(
                database_url, arguments.ceiling_events, arguments.http_concurrency
            )
            http_rate = await http_ingestion(
                http,
                metering,
                database_url,
                orgs,
                events=arguments.events,
                concurrency=arguments.http_concurrency,
                duplicate_share=arguments.duplicate_share,
            )
            nats_rate = await nats_ingestion(js, database_url, orgs, events=arguments.events)
            rates = [jetstream, copy, http_rate, nats_rate]
            for rate in rates:
                progress(f"{rate.name}: {rate.per_second:,.0f} events/s")

            progress("latency: HTTP")
            rng = random.Random(3)
            probe_headers = metering.headers(probe_org)
            load_headers = {org: metering.headers(org) for org in orgs}
            day_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            day_end = day_start + timedelta(days=2)

            async def http_load(count: int) -> None:
                org = rng.choice(orgs)
                batch = [api_event(rng, datetime.now(UTC)) for _ in range(count)]
                response = await http.post("/v1/events", json=batch, headers=load_headers[org])
                response.raise_for_status()

            async def http_probe(_number: int) -> None:
                response = await http.post(
                    "/v1/events", json=api_event(rng, datetime.now(UTC)), headers=probe_headers
                )
                response.raise_for_status()

            latencies.append(
                await latency_run(
                    "HTTP: POST /v1/events -> GET usage",
                    probes=arguments.probes,
                    rate=arguments.steady_rate,
                    send_probe=http_probe,
                    read_count=lambda: usage_count(http, probe_headers, METER, day_start, day_end),
                    send_load=http_load,
                )
            )

            progress("latency: NATS")

            async def nats_load(count: int) -> None:
                now = datetime.now(UTC)
                await publish_all(
                    js, USAGE_RECORDED, [gateway_event(rng.choice(orgs), now) for _ in range(count)]
                )

            async def nats_probe(_number: int) -> None:
                await publish_all(js, USAGE_RECORDED, [gateway_event(probe_org, datetime.now(UTC))])

            progress(
                f"{latencies[-1].name}: p99 {percentile(latencies[-1].milliseconds, 0.99):.1f} ms"
            )
            latencies.append(
                await latency_run(
                    "NATS: publish to USAGE -> GET usage",
                    probes=arguments.probes,
                    rate=arguments.steady_rate,
                    send_probe=nats_probe,
                    read_count=lambda: usage_count(
                        http, probe_headers, "api_requests", day_start, day_end
                    ),
                    send_load=nats_load,
                )
            )

        if "query" not in arguments.skip:
            shape = HistoryShape.at_scale(arguments.scale)
            history_orgs = [uuid.uuid4() for _ in range(shape.organizations)]
            for org in history_orgs:
                await create_meter(http, metering, org)
            end = datetime.now(UTC)
            progress(
                f"seeding {shape.minute_rows:,} minute rollup rows ({shape.events:,} events' worth)"
            )
            seconds = await seed_history(database_url, history_orgs, shape, end)
            seeding = (shape, seconds)
            progress(f"seeded in {seconds:.0f} s")
            queries = await query_latencies(
                http, metering, history_orgs, end, arguments.query_repeats
            )
        nats_version = client._server_info.get("version", "unknown")
    await client.close()
    postgres = await scalar(database_url, "SHOW server_version")
    report(arguments, rates, latencies, queries, seeding, postgres, nats_version)


def report(
    arguments: argparse.Namespace,
    rates: list[Rate],
    latencies: list[Latencies],
    queries: list[Latencies],
    seeding: tuple[HistoryShape, float] | None,
    postgres: str,
    nats_version: str,
) -> None:
    print(f"\nmetering end to end ({'quick' if arguments.quick else 'full'} run)\n")
    if rates:
        jetstream, copy, http_rate, nats_rate = rates
        print("| durable ingestion | events | seconds | events/s | vs ceiling | note |")
        print("|---|--:|--:|--:|--:|---|")
        for rate, ceiling in (
            (jetstream, None),
            (copy, None),
            (http_rate, copy),
            (nats_rate, jetstream),
        ):
            ratio = (
                f"{rate.per_second / ceiling.per_second:.3f} of {ceiling.name.split(' ')[0]}"
                if ceiling
                else "ceiling"
            )
            print(
                f"| {rate.name} | {rate.events:,} | {rate.seconds:.1f} | {rate.per_second:,.0f} "
                f"| {ratio} | {rate.note} |"
            )
        print()
    for title, rows in (("event to queryable", latencies), ("usage query", queries)):
        if not rows:
            continue
        print(f"| {title} | samples | p50 ms | p99 ms | max ms | note |")
        print("|---|--:|--:|--:|--:|---|")
        for row in rows:
            values = row.milliseconds
            print(
                f"| {row.name} | {len(values)} | {percentile(values, 0.5):.1f} "
                f"| {percentile(values, 0.99):.1f} | {max(values):.1f} | {row.note} |"
            )
        print()
    if seeding is not None:
        shape, seconds = seeding
        print(
            f"seeded history: {shape.organizations} organisations x {shape.subjects} subjects x "
            f"{shape.groups} (model, region) groups, {shape.days} days, {shape.rows_per_series:,} "
            f"active minutes per series x {shape.events_per_row} events = {shape.minute_rows:,} "
            f"minute rows, {shape.events:,} events' worth (scale {arguments.scale}); seeded and "
            f"rolled up in {seconds:.0f} s. Queries through HTTP, round-robin over the "
            "organisations.\n"
        )
    print("| machine | |\n|---|---|")
    for name, value in describe_machine(postgresql=postgres, **{"nats-server": nats_version}):
        print(f"| {name} | {value} |")
    print(f'\ncommand: make bench-metering BENCH_ARGS="{" ".join(sys.argv[1:])}"')


def main() -> None:
    arguments = parse_arguments()
    with cleanup_on_exit() as stack:
        database_url = fresh_database(
            stack, arguments.database_url or os.environ.get("TOLLGATE_DATABASE_URL")
        )
        nats_url = arguments.nats_url
        if not nats_url:
            store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nats-"))
            server = EmbeddedNats(Path(store))
            nats_url = server.start()
            stack.callback(server.stop)
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-metering-")))
        metering = Metering(database_url=database_url, nats_url=nats_url, log_dir=logs)
        progress("starting tollgate-metering serve")
        metering.start()
        stack.callback(metering.process.stop)
        try:
            asyncio.run(run(arguments, database_url, nats_url, metering))
        except BaseException:
            log = metering.process.log_path
            if log.exists():
                print(log.read_text()[-3000:], file=sys.stderr)
            raise


if __name__ == "__main__":
    main()
