"""Gateway usage keeps flowing while NATS is stopped and started again, and metering is killed
with SIGKILL between committing a batch and acking it: every usage event becomes exactly one
api_requests event, and the rollups equal the raw events.

A publisher sends the gateway's own usage events (tollgate_gateway.usage.event) to the USAGE
stream the way the gateway's publisher does (Nats-Msg-Id = id, a batch sent again whole until
JetStream acknowledged all of it). Meanwhile:

1. NATS stops and starts again; the same metering process goes on consuming.
2. While metering is blocked inside a batch (this test holds a lock on the events table), NATS
   stops; the lock is released, metering commits the batch but cannot ack it, and is killed.
   NATS starts again with the batch still unacked, a new metering process starts, and the batch
   comes back to it: its inbox must drop it.

Random choices come from one seed, printed in every assertion; set
TOLLGATE_TEST_RELIABILITY_SEED to replay a seed's events.
"""

import asyncio
import json
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollgate_gateway.usage.event import USAGE_RECORDED, RequestMeasure, usage_event
from tollgate_gateway.usage.subject import UsageSubject
from tollgate_metering.meters.built_in import API_REQUESTS, BUILT_IN_METERS
from tollgate_metering.testing import migrated_test_settings
from tollgate_shared.database import create_engine
from tollgate_shared.embedded import EmbeddedNats
from tollgate_shared.events.streams import USAGE_STREAM, ensure_stream, usage_stream
from tollgate_shared.identity import Identity

from .metering_processes import (
    MeteringProcess,
    metering_environment,
    stopped_at_exit,
    usage_total,
)

EVENTS = 2000
PUBLISH_BATCH = 50
# Shorter than an outage: a batch sent while NATS is down fails and is sent again.
PUBLISH_ACK_TIMEOUT_SECONDS = 0.25
CONSUMER = "metering-usage"
# Production consumers wait 30 s before a delivered, unacked message comes again; that is the
# only reason the batch left unacked would take long, so this test's consumer waits 2 s.
ACK_WAIT_SECONDS = 2.0
OUTAGE_SECONDS = 0.5
DEADLINE_SECONDS = 30.0
GROUP_BY = BUILT_IN_METERS[API_REQUESTS].group_by
ROUTES = ["search", "orders", "demo"]
METHODS = ["GET", "POST", "DELETE"]
STATUSES = [200, 201, 404, 429, 503]


def run_seed() -> int:
    chosen = os.environ.get("TOLLGATE_TEST_RELIABILITY_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(2**32)


@dataclass(frozen=True)
class Published:
    id: str
    org_id: uuid.UUID
    minute: datetime
    group: str  # the api_requests group key (route, method, status, key_id) as sorted JSON
    payload: bytes


def gateway_usage(rng: random.Random, now: datetime) -> list[Published]:
    """Usage events of three organisations' keys over the last half hour (a spool replayed
    after an outage carries older requests), serialized as the gateway spools them."""
    orgs = [uuid.uuid4() for _ in range(3)]
    keys = {org: [str(uuid.uuid4()) for _ in range(3)] for org in orgs}
    events = []
    for _ in range(EVENTS):
        org = rng.choice(orgs)
        identity = Identity(principal_type="key", principal_id=rng.choice(keys[org]), org_id=org)
        route = rng.choice(ROUTES)
        measure = RequestMeasure(
            received_at=now - timedelta(seconds=rng.uniform(0, 1800)),
            started=0.0,
            method=rng.choice(METHODS),
            status=rng.choice(STATUSES),
            request_bytes=rng.randint(0, 5000),
            response_bytes=rng.randint(0, 50000),
        )
        event = usage_event(
            UsageSubject(identity=identity, route_name=route, meter=rng.choice([None, route])),
            measure,
            request_id=f"{rng.getrandbits(128):032x}",
            latency_ms=rng.uniform(0.5, 300),
        )
        group = {name: event.data[name] for name in GROUP_BY}
        events.append(
            Published(
                id=event.id,
                org_id=org,
                minute=measure.received_at.replace(second=0, microsecond=0),
                group=json.dumps(group, sort_keys=True),
                payload=event.to_json(),
            )
        )
    return events


@dataclass
class UsagePublisher:
    """Publishes like the gateway's publisher: a batch with publish_async, sent again whole,
    same message ids, until JetStream acknowledged every message of it. Stops before a gate's
    index until the gate opens, so the outages fall mid-way by construction."""

    js: JetStreamContext
    events: list[Published]
    seed: int
    gates: dict[int, asyncio.Event]
    acknowledged: int = 0  # events of the batches fully acknowledged
    stored: int = 0  # acknowledgements that were not duplicates
    attempts_failed: int = 0

    async def publish_all(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        for start in range(0, len(self.events), PUBLISH_BATCH):
            for index, gate in self.gates.items():
                if start <= index < start + PUBLISH_BATCH:
                    await asyncio.wait_for(gate.wait(), DEADLINE_SECONDS)
            batch = self.events[start : start + PUBLISH_BATCH]
            while not await self._publish(batch):
                self.attempts_failed += 1
                assert loop.time() < deadline, f"seed {self.seed}: JetStream never came back"
                await asyncio.sleep(0.05)
            self.acknowledged += len(batch)

    async def _publish(self, batch: list[Published]) -> bool:
        acks: list[asyncio.Future[Any]] = []
        try:
            for event in batch:
                acks.append(
                    await self.js.publish_async(
                        USAGE_RECORDED, event.payload, headers={"Nats-Msg-Id": event.id}
                    )
                )
            results = await asyncio.wait_for(asyncio.gather(*acks), PUBLISH_ACK_TIMEOUT_SECONDS)
        except (nats.errors.Error, TimeoutError):
            return False
        finally:
            for ack in acks:
                ack.cancel()
        self.stored += sum(1 for result in results if not result.duplicate)
        return True


@asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    async def expected_while_down(error: Exception) -> None:
        """Refused connections during the outages are the point; nothing to report."""

    client: Client = await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=expected_while_down
    )
    try:
        yield client.jetstream(publish_async_max_pending=4 * PUBLISH_BATCH)
    finally:
        await client.close()


async def create_usage_consumer(js: JetStreamContext) -> None:
    """The durable consumer metering would create, but with a short ack wait; metering uses
    an existing consumer as it is."""
    await ensure_stream(js, usage_stream())
    await js.add_consumer(
        USAGE_STREAM,
        ConsumerConfig(
            durable_name=CONSUMER,
            filter_subject=USAGE_RECORDED,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_deliver=-1,
        ),
    )


async def consumed(connection: AsyncConnection) -> int:
    """Usage events metering's consumer has committed (its inbox rows)."""
    count = await connection.scalar(
        sa.text("SELECT count(*) FROM metering.inbox WHERE consumer = :consumer"),
        {"consumer": CONSUMER},
    )
    await connection.rollback()  # the next look gets a fresh snapshot
    return int(count or 0)


async def waiting_on_events_table(connection: AsyncConnection) -> int:
    """Sessions waiting for a lock on metering.usage_events."""
    count = await connection.scalar(
        sa.text(
            "SELECT count(*) FROM pg_locks"
            " WHERE relation = 'metering.usage_events'::regclass AND NOT granted"
        )
    )
    await connection.rollback()
    return int(count or 0)


async def until(condition: Callable[[], Awaitable[bool]], what: str, seed: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await condition():
        assert loop.time() < deadline, f"seed {seed}: {what} not reached in {DEADLINE_SECONDS}s"
        await asyncio.sleep(0.02)


@dataclass
class Disruptions:
    """Stops NATS twice and kills metering once, at points of the publisher's progress."""

    nats_server: EmbeddedNats
    metering: MeteringProcess
    engine: AsyncEngine
    seed: int
    publisher: "UsagePublisher | None" = None
    outage_one: asyncio.Event = field(default_factory=asyncio.Event)
    lock_taken: asyncio.Event = field(default_factory=asyncio.Event)
    outage_two: asyncio.Event = field(default_factory=asyncio.Event)
    # What they saw, for the assertions.
    acknowledged_at_first_restart: int = 0
    consumed_at_kill: int = 0
    acked_by_jetstream_at_kill: int = 0

    def gates(self) -> dict[int, asyncio.Event]:
        """Where the publisher waits for a disruption to begin, so each falls mid-way."""
        return {
            EVENTS // 3: self.outage_one,
            EVENTS * 3 // 4: self.lock_taken,
            EVENTS * 7 // 8: self.outage_two,
        }

    async def run(self) -> None:
        async with self.engine.connect() as watch:
            await self._restart_nats(watch)
            await self._kill_between_commit_and_ack(watch)
        async with jetstream(self.nats_server.url) as js:
            info = await js.consumer_info(USAGE_STREAM, CONSUMER)
        assert info.delivered is not None and info.num_ack_pending is not None
        # Delivered in stream order: every message up to delivered.stream_seq was delivered.
        self.acked_by_jetstream_at_kill = info.delivered.stream_seq - info.num_ack_pending
        await self.metering.start()

    async def _restart_nats(self, watch: AsyncConnection) -> None:
        """NATS stops for a moment; the same metering process consumes on afterwards."""
        publisher = self.publisher
        assert publisher is not None

        async def a_quarter_published() -> bool:
            return publisher.acknowledged >= EVENTS // 4

        await until(a_quarter_published, "a quarter published", self.seed)
        self.nats_server.stop()
        self.outage_one.set()
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a result
        self.nats_server.start()
        self.acknowledged_at_first_restart = publisher.acknowledged

        async def consumed_past_the_restart() -> bool:
            # At most EVENTS // 3 and one batch were published before the outage.
            return await consumed(watch) >= EVENTS // 2

        await until(consumed_past_the_restart, "consuming after the NATS restart", self.seed)

    async def _kill_between_commit_and_ack(self, watch: AsyncConnection) -> None:
        """Metering blocked inside a batch, NATS stops, the batch commits, metering dies."""
        async with self.engine.connect() as locker:
            await locker.execute(sa.text("LOCK TABLE metering.usage_events IN SHARE MODE"))
            self.lock_taken.set()

            async def blocked_on_the_lock() -> bool:
                return await waiting_on_events_table(watch) > 0

            await until(blocked_on_the_lock, "metering blocked on the events table", self.seed)
            before_commit = await consumed(watch)
            self.nats_server.stop()
            self.outage_two.set()
            await locker.rollback()  # the batch goes on and commits; its acks cannot go out

        async def batch_committed() -> bool:
            return await consumed(watch) > before_commit

        await until(batch_committed, "the blocked batch committed", self.seed)
        self.consumed_at_kill = await consumed(watch)
        self.metering.kill()
        self.nats_server.start()


async def stored_state(engine: AsyncEngine) -> dict[str, Any]:
    rollup_query = sa.text(
        "SELECT org_id, bucket_start, subject, group_key::text, sum(event_count)"
        " FROM metering.usage_rollups WHERE meter_key = :meter GROUP BY 1, 2, 3, 4"
    )
    # The group key as the rollups build it: every group_by property, a missing one null.
    raw = sa.text(
        "SELECT org_id, date_trunc('minute', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
        " subject, (SELECT jsonb_object_agg(name, coalesce(data -> name, 'null'))"
        "   FROM unnest(CAST(:group_by AS text[])) AS name)::text,"
        " count(*) FROM metering.usage_events WHERE type = :meter GROUP BY 1, 2, 3, 4"
    )
    parameters = {"meter": API_REQUESTS, "group_by": GROUP_BY}
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.text("SELECT org_id, id, type, source FROM metering.usage_events")
            )
        ).all()
        dead_letters = await connection.scalar(
            sa.text("SELECT count(*) FROM metering.dead_letters")
        )
        rollups = (await connection.execute(rollup_query, parameters)).all()
        grouped = (await connection.execute(raw, parameters)).all()

    def keyed(result: Any) -> dict[tuple[Any, ...], int]:
        # Group keys through json, so both sides spell the same object the same way.
        return {
            (row[0], row[1], row[2], json.dumps(json.loads(row[3]), sort_keys=True)): row[4]
            for row in result
        }

    return {
        "rows": rows,
        "dead_letters": dead_letters,
        "rollups": keyed(rollups),
        "raw": keyed(grouped),
    }


async def duplicates_dropped(metering: MeteringProcess) -> float:
    """Deliveries the running process found already in its inbox (and only acked)."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        return await metering.metric(
            http, "tollgate_events_consumed_total", consumer=CONSUMER, outcome="duplicate"
        )


async def test_nats_restarts_and_a_kill_between_commit_and_ack_store_each_usage_event_once(
    new_database: Callable[[str], str],
    identity_keys: tuple[str, str],
    mint_identity: Callable[..., dict[str, str]],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    seed = run_seed()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = gateway_usage(rng, now)
    seen = f"seed {seed}"

    nats_server = EmbeddedNats(tmp_path / "nats")
    nats_server.start()
    engine: AsyncEngine | None = None
    try:
        settings = migrated_test_settings(
            database_url=new_database("metering_nats_restart"),
            nats_url=nats_server.url,
            identity_public_key=identity_keys[1],
            usage_consumer_name=CONSUMER,
        )
        engine = create_engine(settings.database_url, schema="metering", pool_size=2)
        async with jetstream(nats_server.url) as js:
            await create_usage_consumer(js)
        metering = MeteringProcess(env=metering_environment(settings), log_dir=tmp_path / "logs")
        with stopped_at_exit(metering):
            await metering.start()
            disruptions = Disruptions(nats_server, metering, engine, seed)
            async with jetstream(nats_server.url) as js:
                publisher = UsagePublisher(js, events, seed, gates=disruptions.gates())
                disruptions.publisher = publisher
                await asyncio.wait_for(
                    asyncio.gather(publisher.publish_all(), disruptions.run()),
                    2 * DEADLINE_SECONDS,
                )

                async def drained() -> bool:
                    """Every event committed, nothing left to deliver or to ack."""
                    info = await js.consumer_info(USAGE_STREAM, CONSUMER)
                    assert engine is not None
                    async with engine.connect() as connection:
                        done = await consumed(connection)
                    return done >= EVENTS and info.num_pending == 0 and not info.num_ack_pending

                await until(drained, "every event consumed and acked", seed)
                stream = await js.stream_info(USAGE_STREAM)

            dropped = await duplicates_dropped(metering)
            async with httpx.AsyncClient(timeout=5.0) as http:
                totals = {}
                for org_id in sorted({event.org_id for event in events}):
                    member = mint_identity("user", principal_id=str(uuid.uuid4()), org_id=org_id)
                    totals[org_id] = await usage_total(
                        http,
                        metering.url,
                        member,
                        meter=API_REQUESTS,
                        since=(now - timedelta(hours=1)).replace(second=0, microsecond=0),
                        until=now.replace(second=0, microsecond=0) + timedelta(minutes=2),
                    )
        state = await stored_state(engine)
    finally:
        if engine is not None:
            await engine.dispose()
        nats_server.stop()

    committed_unacked = disruptions.consumed_at_kill - disruptions.acked_by_jetstream_at_kill
    record_property(
        "measurement",
        f"{seen}: {publisher.attempts_failed} publish attempts failed, "
        f"{EVENTS - publisher.stored} republished copies dropped by JetStream, {committed_unacked} "
        f"events committed but unacked at the kill, {dropped:.0f} redeliveries dropped by the "
        "restarted process's inbox",
    )
    # The disruptions happened as designed: mid-way, and the kill left a committed batch unacked.
    assert disruptions.acknowledged_at_first_restart < EVENTS // 2, seen
    assert publisher.attempts_failed > 0, seen
    assert committed_unacked > 0, f"{seen}: no batch was committed and left unacked"
    assert dropped >= committed_unacked, seen

    # JetStream holds each event once: it dropped the republished copies by Nats-Msg-Id.
    assert stream.state.messages == EVENTS, seen

    # Exactly one api_requests event per usage event, none dead-lettered.
    assert state["dead_letters"] == 0, seen
    assert len(state["rows"]) == EVENTS, seen
    assert sorted(row.id for row in state["rows"]) == sorted(event.id for event in events), seen
    assert {(row.type, row.source) for row in state["rows"]} == {(API_REQUESTS, "gateway")}, seen
    sent_orgs = {event.id: event.org_id for event in events}
    assert all(row.org_id == sent_orgs[row.id] for row in state["rows"]), seen

    # Rollups equal the raw events, and both equal what was published.
    expected = Counter(
        (event.org_id, event.minute, str(event.org_id), event.group) for event in events
    )
    assert state["raw"] == dict(expected), seen
    assert state["rollups"] == state["raw"], seen
    per_org = Counter(event.org_id for event in events)
    assert totals == {org_id: Decimal(count) for org_id, count in per_org.items()}, seen
