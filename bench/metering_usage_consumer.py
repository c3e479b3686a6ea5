"""How fast metering's USAGE consumer stores the gateway's usage events: one message per
transaction (the kit's per-message path) vs one fetched batch per transaction.

    make bench-metering-consumer      # or: uv run python bench/metering_usage_consumer.py --help

Per path: a fresh JetStream stream gets the events first (a backlog, as when a busy gateway has
outrun the consumer), then the consumer starts and the clock runs until JetStream reports every
message acked. The consumer is metering's own (`gateway_usage_consumer`'s handlers, the kit's
`DurableConsumer`), only on a stream and durable of the bench's, so a running metering service
on the same NATS neither sees these events nor loses its own. Each path then checks that every
event is stored exactly once, and the tables are emptied for the next.

PostgreSQL: a fresh database on the server of TOLLGATE_DATABASE_URL, dropped at the end, else an
embedded server. NATS: TOLLGATE_NATS_URL, else an embedded server. The per-message path gets
fewer events by default: its rate is steady, and 50,000 at a few hundred a second take minutes.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import psycopg
import sqlalchemy as sa
from harness import progress
from machine import describe_machine
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_metering.gateway_usage.handlers import (
    record_gateway_usage,
    record_gateway_usage_batch,
)
from tollgate_shared.database import create_engine, create_sessionmaker
from tollgate_shared.embedded import EmbeddedNats, EmbeddedPostgres
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.migrations import upgrade
from tollgate_shared.testing.servers import create_database

PUBLISH_CONCURRENCY = 1000


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="batched path")
    parser.add_argument("--per-message-events", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=500, help="batched path's fetch size")
    parser.add_argument("--organizations", type=int, default=10, help="events spread over them")
    parser.add_argument("--database-url", help="default: TOLLGATE_DATABASE_URL, else embedded")
    parser.add_argument("--nats-url", help="default: TOLLGATE_NATS_URL, else embedded")
    return parser.parse_args()


@dataclass
class Result:
    path: str
    fetch: int
    events: int
    seconds: float
    transactions: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def usage_event(org_id: uuid.UUID) -> bytes:
    """A usage event as the gateway publishes it (docs/events.md)."""
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "specversion": "1.0",
            "id": request_id,
            "source": "/tollgate/gateway",
            "type": "tollgate.gateway.usage.recorded",
            "time": now,
            "datacontenttype": "application/json",
            "orgid": str(org_id),
            "data": {
                "request_id": request_id,
                "organization_id": str(org_id),
                "principal_type": "key",
                "key_id": str(uuid.uuid4()),
                "user_id": None,
                "route": "demo",
                "meter": "api_requests",
                "method": "GET",
                "status": 200,
                "latency_ms": 2.417,
                "request_bytes": 0,
                "response_bytes": 71,
                "timestamp": now,
            },
        }
    ).encode()


async def publish_backlog(
    js: JetStreamContext, subject: str, count: int, organizations: list[uuid.UUID]
) -> int:
    """Publish count events round-robin over the organisations; returns the last sequence."""
    last = 0
    for start in range(0, count, PUBLISH_CONCURRENCY):
        bodies = [
            usage_event(organizations[index % len(organizations)])
            for index in range(start, min(count, start + PUBLISH_CONCURRENCY))
        ]
        acks = await asyncio.gather(
            *(
                js.publish(subject, body, headers={"Nats-Msg-Id": json.loads(body)["id"]})
                for body in bodies
            )
        )
        last = max(last, *(ack.seq for ack in acks))
    return last


async def drain(
    js: JetStreamContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    path: str,
    events: int,
    batch_size: int,
    organizations: list[uuid.UUID],
) -> Result:
    token = uuid.uuid4().hex[:8]
    stream, subject = f"BENCH_USAGE_{token}", f"bench.{token}.usage.recorded"
    await js.add_stream(
        StreamConfig(
            name=stream,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,  # as the USAGE stream
            duplicate_window=600,
        )
    )
    try:
        progress(f"{path}: publishing {events:,} usage events")
        last_sequence = await publish_backlog(js, subject, events, organizations)
        consumer = DurableConsumer(
            js=js,
            sessionmaker=sessionmaker,
            stream=stream,
            durable="bench",
            filter_subject=subject,
            handler=record_gateway_usage,
            batch_handler=record_gateway_usage_batch if path == "batched" else None,
            batch_size=batch_size,
        )
        progress(f"{path}: consuming")
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run())
        try:
            while True:
                if task.done():
                    task.result()  # the consumer died: show why
                try:
                    info = await js.consumer_info(stream, "bench")
                except NotFoundError:  # run() has not created it yet
                    info = None
                if info is not None and info.ack_floor.stream_seq >= last_sequence:
                    break
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await js.delete_stream(stream)
    async with sessionmaker() as session, session.begin():
        stored, distinct, transactions = (
            await session.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT id), count(DISTINCT received_at) "
                    "FROM metering.usage_events"
                )
            )
        ).one()
        await session.execute(sa.text("TRUNCATE metering.usage_events, metering.inbox"))
    if (stored, distinct) != (events, events):
        raise RuntimeError(f"{path}: {events} events published, {stored} rows ({distinct} ids)")
    return Result(path, batch_size, events, seconds, transactions)


async def measure(arguments: argparse.Namespace, database_url: str, nats_url: str) -> None:
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
    engine = create_engine(database_url, schema=SERVICE)
    sessionmaker = create_sessionmaker(engine)
    client = await nats.connect(nats_url)
    js = client.jetstream()
    organizations = [uuid.uuid4() for _ in range(arguments.organizations)]
    try:
        async with engine.connect() as connection:
            postgres = (await connection.execute(sa.text("SHOW server_version"))).scalar_one()
        results = [
            await drain(
                js,
                sessionmaker,
                path="per message",
                events=arguments.per_message_events,
                batch_size=50,  # the kit's default fetch: each message still has its own commit
                organizations=organizations,
            ),
            await drain(
                js,
                sessionmaker,
                path="batched",
                events=arguments.events,
                batch_size=arguments.batch_size,
                organizations=organizations,
            ),
        ]
        nats_version = client._server_info.get("version", "unknown")
    finally:
        await client.close()
        await engine.dispose()

    print(
        f"metering USAGE consumer draining a backlog, events over {arguments.organizations} "
        "organisations, each stored once (checked)\n"
    )
    print("| path | fetch | events | seconds | transactions | events/s |")
    print("|---|--:|--:|--:|--:|--:|")
    for result in results:
        print(
            f"| {result.path} | {result.fetch} | {result.events:,} | {result.seconds:.1f} "
            f"| {result.transactions:,} | {result.rate:,.0f} |"
        )
    print(f"\nbatched / per message: {results[1].rate / results[0].rate:.1f}x\n")
    print("| machine | |\n|---|---|")
    for name, value in describe_machine(postgresql=postgres, **{"nats-server": nats_version}):
        print(f"| {name} | {value} |")


def fresh_database(stack: ExitStack, server_url: str | None) -> str:
    """A new database on the given server (dropped at the end), else on an embedded one."""
    if server_url is None:
        store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-postgres-"))
        server = EmbeddedPostgres(Path(store) / "pgdata")
        server_url = server.start()
        stack.callback(server.stop)
    name = f"bench_metering_consumer_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    stack.callback(_drop_database, server_url, name)
    return url


def _drop_database(server_url: str, name: str) -> None:
    plain = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    arguments = parse_arguments()
    with ExitStack() as stack:
        database_url = fresh_database(
            stack, arguments.database_url or os.environ.get("TOLLGATE_DATABASE_URL")
        )
        nats_url = arguments.nats_url or os.environ.get("TOLLGATE_NATS_URL")
        if not nats_url:
            store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nats-"))
            server = EmbeddedNats(Path(store))
            nats_url = server.start()
            stack.callback(server.stop)
        asyncio.run(measure(arguments, database_url, nats_url))


if __name__ == "__main__":
    main()
