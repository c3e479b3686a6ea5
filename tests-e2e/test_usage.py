"""The stack started by `make dev`'s launcher emits usage events to JetStream, with the gateway's
spool inside the state folder."""

import asyncio
import time

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tollgate_shared.events.envelope import CloudEvent


async def _event_with_id(nats_url: str, event_id: str) -> CloudEvent | None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        subscription = await js.pull_subscribe(
            "tollgate.gateway.usage.recorded",
            stream="USAGE",
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30,
            ),
        )
        while True:
            try:
                messages = await subscription.fetch(500, timeout=1)
            except nats.errors.TimeoutError:
                return None
            for message in messages:
                event = CloudEvent.from_json(message.data)
                if event.id == event_id:
                    return event
            if messages[-1].metadata.num_pending == 0:
                return None
    finally:
        await client.close()


def test_a_call_through_the_stack_becomes_a_usage_event(stack):
    response = httpx.get(
        f"{stack.gateway_url}/api/demo/hello",
        headers={"Authorization": f"Bearer {stack.demo.api_key}"},
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert (stack.state_dir / "usage-spool" / "0" / "lock").exists()

    deadline = time.monotonic() + 20  # published within moments; a deadline, not a measure
    while (event := asyncio.run(_event_with_id(stack.nats_url, request_id))) is None:
        assert time.monotonic() < deadline, "no usage event"
        time.sleep(0.1)
    assert event.orgid == stack.demo.organization_id
    assert (event.data["route"], event.data["meter"]) == ("demo", "api_requests")
    assert event.data["response_bytes"] == len(response.content)
