"""Metering killed with SIGKILL while a client reports usage: the client resends each batch with
the same ids until it gets a 200, and every event is stored and rolled up exactly once.

A real process (python -m tollgate_metering.cli serve), killed 3 to 5 times while batches are
in flight, then started again on its port. Some kills come a random moment after a batch was
sent (mostly before its commit: nothing stored, the resent batch is stored); the others as the
batch's answer comes back through a relay in front of metering, which drops it (after the
commit: the answer is lost, the resent batch comes back as duplicates).
Random choices come from one seed, printed in every assertion; set
TOLLGATE_TEST_RELIABILITY_SEED to replay a seed's events and kill points.
"""

import asyncio
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_metering.testing import migrated_test_settings
from tollgate_shared.database import create_engine

from .conftest import usage_consumer_from_stream_end
from .metering_processes import (
    MeteringProcess,
    metering_environment,
    stopped_at_exit,
    usage_total,
)

EVENTS = 3000
BATCH_SIZE = 100
METER = "tokens"
SUBJECTS = ["customer-a", "customer-b", "customer-c"]
# A delayed kill waits for the client to be sending a chosen batch, then up to this long: about
# the time a batch takes.
KILL_DELAY_SECONDS = 0.06
# The moments of a kill: a random delay after the client starts sending a batch, or the
# batch's answer arriving (the batch is committed by then).
DELAY, ANSWER = "delay", "answer"
# Batches left after the last kill point, so the last kill still finds the client sending.
QUIET_TAIL_BATCHES = 5
DEADLINE_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 0.02

Bucket = tuple[datetime, str]  # (minute in UTC, subject)


def run_seed() -> int:
    chosen = os.environ.get("TOLLGATE_TEST_RELIABILITY_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(2**32)


def random_events(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Unique events over the last three hours; whole and fractional values (sums stay exact)."""
    events = []
    for number in range(EVENTS):
        if rng.random() < 0.5:
            value: int | float = rng.randint(0, 1_000_000)
        else:
            value = round(rng.uniform(0, 1000), 3)
        moment = now - timedelta(seconds=rng.uniform(0, 3 * 3600))
        events.append(
            {
                "id": f"evt-{number:05d}-{rng.getrandbits(32):08x}",
                "type": METER,
                "subject": rng.choice(SUBJECTS),
                "time": moment.isoformat(),
                "data": {METER: value},
            }
        )
    return events


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def exact(value: int | float) -> Decimal:
    """The value as PostgreSQL reads it from the JSON text."""
    return Decimal(repr(value))


def expected_buckets(events: list[dict[str, Any]]) -> dict[Bucket, tuple[int, Decimal]]:
    """(count, sum) per minute and subject, computed from what the client sent."""
    counts: defaultdict[Bucket, int] = defaultdict(int)
    sums: defaultdict[Bucket, Decimal] = defaultdict(Decimal)
    for event in events:
        key = (minute_of(datetime.fromisoformat(event["time"])), event["subject"])
        counts[key] += 1
        sums[key] += exact(event["data"][METER])
    return {key: (counts[key], sums[key]) for key in counts}


@dataclass
class RetryingClient:
    """Sends batches in order; each one again, with the same ids, until metering answers 200."""

    http: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    seed: int
    sending: int = -1  # index of the batch being sent
    attempts: int = 0
    unanswered: int = 0  # attempts whose connection closed or timed out without an answer
    server_errors: int = 0
    stored_before_answer: int = 0  # batches a retry found already stored (the answer was lost)
    answers: list[dict[str, Any]] = field(default_factory=list)

    async def send_all(self, batches: list[list[dict[str, Any]]]) -> None:
        for index, batch in enumerate(batches):
            self.sending = index
            answer = await self.send_until_answered(batch)
            inserted, duplicates = answer["inserted"], answer["duplicates"]
            # One transaction per request: a batch is stored whole or not at all.
            assert answer["rejected"] == [], f"seed {self.seed}: {answer}"
            assert (inserted, duplicates) in ((len(batch), 0), (0, len(batch))), (
                f"seed {self.seed}: batch {index} partly stored before: {answer}"
            )
            if duplicates:
                self.stored_before_answer += 1
            self.answers.append(answer)
        self.sending = len(batches)

    async def send_until_answered(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while True:
            assert loop.time() < deadline, f"seed {self.seed}: batch {self.sending} never stored"
            self.attempts += 1
            try:
                response = await self.http.post(
                    f"{self.url}/v1/events", json=batch, headers=self.headers
                )
            except httpx.TransportError:
                self.unanswered += 1
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                assert response.status_code >= 500, f"seed {self.seed}: {response.text}"
                self.server_errors += 1
            await asyncio.sleep(RETRY_PAUSE_SECONDS)


class AnswerCutter:
    """A TCP relay between the client and metering. Armed, it drops the next answer metering
    sends (so its request was committed) and kills metering before closing the client's
    connection: the client sees exactly what a crash between commit and answer shows it."""

    def __init__(self, metering: MeteringProcess) -> None:
        self.metering = metering
        self.armed: asyncio.Future[None] | None = None
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        try:
            metering_in, metering_out = await asyncio.open_connection(
                "127.0.0.1", self.metering.port
            )
        except OSError:  # metering is down: the client's connection closes unanswered
            client_out.close()
            return
        await asyncio.gather(
            self._pump(client_in, metering_out, answers=False),
            self._pump(metering_in, client_out, answers=True),
            return_exceptions=True,
        )
        for writer in (client_out, metering_out):
            writer.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if answers and self.armed is not None and not self.armed.done():
                    self.metering.kill()
                    self.armed.set_result(None)
                    return
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


async def kill_while_sending(
    metering: MeteringProcess,
    cutter: AnswerCutter,
    client: RetryingClient,
    kill_points: list[tuple[int, str]],
    rng: random.Random,
) -> None:
    """SIGKILL metering once the client sends each chosen batch, then start it again on the
    same port: after a random delay (mostly before the batch's commit), or as its answer comes
    back (after the commit, the answer lost)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    for batch_index, moment in kill_points:
        while client.sending < batch_index:
            assert loop.time() < deadline, f"seed {client.seed}: client stuck before {batch_index}"
            await asyncio.sleep(0.002)
        if moment == ANSWER:
            cutter.armed = loop.create_future()
            await asyncio.wait_for(cutter.armed, max(deadline - loop.time(), 0))
        else:
            await asyncio.sleep(rng.uniform(0, KILL_DELAY_SECONDS))
            metering.kill()
        await metering.start()


async def stored_state(engine: AsyncEngine, org_id: uuid.UUID) -> dict[str, Any]:
    """What the database holds for the organisation's meter: raw events and rollups."""
    raw_query = sa.text(
        "SELECT date_trunc('minute', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute,"
        " subject, count(*), sum((data ->> :meter)::numeric)"
        " FROM metering.usage_events WHERE org_id = :org AND type = :meter GROUP BY 1, 2"
    )
    rollup_query = sa.text(
        "SELECT bucket_start, subject, sum(event_count), sum(value_sum)"
        " FROM metering.usage_rollups WHERE org_id = :org AND meter_key = :meter GROUP BY 1, 2"
    )
    parameters = {"org": org_id, "meter": METER}
    async with engine.connect() as connection:
        ids = (
            await connection.execute(
                sa.text("SELECT id FROM metering.usage_events WHERE org_id = :org"), parameters
            )
        ).scalars()
        id_list = list(ids)
        raw = (await connection.execute(raw_query, parameters)).all()
        rollups = (await connection.execute(rollup_query, parameters)).all()
    return {
        "ids": id_list,
        "raw": {(row[0], row[1]): (row[2], row[3]) for row in raw},
        "rollups": {(row[0], row[1]): (row[2], row[3]) for row in rollups},
    }


async def test_sigkill_during_ingestion_stores_every_retried_event_exactly_once(
    new_database: Callable[[str], str],
    nats_url: str,
    identity_keys: tuple[str, str],
    mint_identity: Callable[..., dict[str, str]],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    seed = run_seed()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = random_events(rng, now)
    batches = [events[start : start + BATCH_SIZE] for start in range(0, EVENTS, BATCH_SIZE)]
    kills = rng.randint(3, 5)
    moments = [ANSWER] * (kills // 2) + [DELAY] * (kills - kills // 2)
    rng.shuffle(moments)
    kill_batches = sorted(rng.sample(range(1, len(batches) - QUIET_TAIL_BATCHES), kills))
    kill_points = list(zip(kill_batches, moments, strict=True))
    org_id = uuid.uuid4()
    admin = mint_identity(
        "user", principal_id=str(uuid.uuid4()), org_id=org_id, roles=("org_admin",), ttl_seconds=600
    )

    async with usage_consumer_from_stream_end(nats_url) as consumer:
        settings = migrated_test_settings(
            database_url=new_database("metering_sigkill"),
            nats_url=nats_url,
            identity_public_key=identity_keys[1],
            usage_consumer_name=consumer,
        )
        engine = create_engine(settings.database_url, schema="metering", pool_size=1)
        metering = MeteringProcess(env=metering_environment(settings), log_dir=tmp_path / "logs")
        cutter = AnswerCutter(metering)
        try:
            with stopped_at_exit(metering):
                await metering.start()
                await cutter.start()
                async with httpx.AsyncClient(timeout=5.0) as http:
                    meter = {
                        "key": METER,
                        "name": "Tokens",
                        "aggregation": "SUM",
                        "value_property": METER,
                    }
                    created = await http.post(
                        f"{metering.url}/v1/meters", json=meter, headers=admin
                    )
                    assert created.status_code == 201, created.text

                    client = RetryingClient(http, cutter.url, admin, seed)
                    await asyncio.wait_for(
                        asyncio.gather(
                            client.send_all(batches),
                            kill_while_sending(metering, cutter, client, kill_points, rng),
                        ),
                        DEADLINE_SECONDS,
                    )
                    api_total = await usage_total(
                        http,
                        metering.url,
                        admin,
                        meter=METER,
                        since=minute_of(now - timedelta(hours=4)),
                        until=minute_of(now) + timedelta(minutes=2),
                    )
            state = await stored_state(engine, org_id)
        finally:
            await cutter.stop()
            await engine.dispose()

    seen = f"seed {seed}, kills (batch, moment) {kill_points}"
    record_property(
        "measurement",
        f"{seen}: {client.attempts} attempts for {len(batches)} batches, {client.unanswered} "
        f"unanswered, {client.server_errors} 5xx, {client.stored_before_answer} batches stored "
        "before their answer was lost",
    )
    assert metering.kills == kills, seen
    # Every kill made an attempt fail: it happened while events were flowing.
    assert client.unanswered >= kills, seen
    # Every answer cut off belonged to a committed batch: its retry found only duplicates.
    assert client.stored_before_answer >= moments.count(ANSWER), seen

    sent_ids = [event["id"] for event in events]
    assert len(state["ids"]) == EVENTS, seen
    assert sorted(state["ids"]) == sorted(sent_ids), seen
    assert sum(answer["inserted"] for answer in client.answers) == EVENTS - (
        BATCH_SIZE * client.stored_before_answer
    ), seen

    expected = expected_buckets(events)
    expected_total = sum((total for _, total in expected.values()), Decimal(0))
    raw_total = sum((total for _, total in state["raw"].values()), Decimal(0))
    assert raw_total == expected_total, seen
    assert state["raw"] == expected, seen
    assert state["rollups"] == state["raw"], seen
    assert api_total == expected_total, seen
