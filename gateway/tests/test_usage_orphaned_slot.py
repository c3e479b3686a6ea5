"""Replicas sharing a spool folder each hold a slot; a slot left by a replica that died and never
started again is published by the next gateway that starts on the folder."""

import asyncio
import time
import uuid
from datetime import UTC, datetime

from tollgate_gateway.app import create_app as create_gateway
from tollgate_gateway.usage.event import RequestMeasure, usage_event
from tollgate_gateway.usage.spool import UsageSpool
from tollgate_gateway.usage.subject import UsageSubject
from tollgate_shared.identity import Identity
from tollgate_shared.testing.http import serving

from .usage_stream import DEADLINE_SECONDS, jetstream, last_sequence, spool_of, usage_events_after


async def test_a_dead_replicas_slot_is_published_by_the_next_gateway(
    gateway_settings, nats_url, tmp_path
):
    folder = tmp_path / "spool"
    folder.mkdir()
    org_id = uuid.uuid4()
    subject = UsageSubject(
        Identity(principal_type="key", principal_id=str(uuid.uuid4()), org_id=org_id),
        route_name="demo",
        meter="api_requests",
    )
    # What a replica holding slot 1 had spooled when it was killed.
    dead_replica = UsageSpool.take(folder / "1", max_bytes=1 << 20)
    assert dead_replica is not None
    spooled = []
    for _ in range(5):
        request_id = uuid.uuid4().hex
        measure = RequestMeasure(
            received_at=datetime.now(UTC), started=time.perf_counter(), method="GET", status=200
        )
        event = usage_event(subject, measure, request_id=request_id, latency_ms=1.0)
        assert dead_replica.append(event.to_json() + b"\n")
        spooled.append(request_id)
    dead_replica.close()  # its lock goes with the process

    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        async with serving(create_gateway(gateway_settings(usage_spool_dir=folder))) as gateway:
            assert spool_of(gateway).directory == folder / "0"  # the first free slot is its own
            deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
            while True:
                events = await usage_events_after(js, start)
                published = [event.id for event in events if event.orgid == str(org_id)]
                if len(published) >= len(spooled):
                    break
                assert asyncio.get_running_loop().time() < deadline, published
                await asyncio.sleep(0.05)
            assert published == spooled
            # Once published, the slot is free again for a replica to take.
            while (free_again := UsageSpool.take(folder / "1", max_bytes=1 << 20)) is None:
                assert asyncio.get_running_loop().time() < deadline, "slot 1 still held"
                await asyncio.sleep(0.05)
            free_again.close()
