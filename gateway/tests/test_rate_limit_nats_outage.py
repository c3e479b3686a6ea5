"""NATS stopped: the gateway decides limits alone with its share of the quota, says so once
(log line and metric), and when NATS returns adds what it granted to the shared counters."""

import asyncio

from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from tollgate_gateway.app import create_app as create_gateway
from tollgate_shared.embedded import EmbeddedNats
from tollgate_shared.testing.http import RunningServer, serving

from .conftest import bearer
from .usage_stream import DEADLINE_SECONDS

LIMIT = 10


async def _until(condition, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def fallback_gauge(http, gateway: RunningServer) -> float:
    text = (await http.get(f"{gateway.url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tollgate_gateway_rate_limit_local_fallback":
                return float(sample.value)
    raise AssertionError("no fallback gauge")


async def test_outage_decides_locally_then_converges(
    http, gateway, gateway_settings, sign_up, tmp_path
):
    isolated_nats = EmbeddedNats(tmp_path / "nats")
    isolated_nats.start()
    account = await sign_up()
    created = await http.post(
        f"{gateway.url}/v1/keys",
        json={"name": "outage", "rate_limit": {"per_hour": LIMIT}},
        headers=bearer(account["tokens"]["access_token"]),
    )
    key = bearer(created.json()["key"])
    try:
        settings = gateway_settings(nats_url=isolated_nats.url)
        async with serving(create_gateway(settings)) as alone:
            nats_client = alone._server.config.app.state.nats  # type: ignore[attr-defined]

            async def call(count: int) -> list[int]:
                return [
                    (await http.get(f"{alone.url}/api/demo/hello", headers=key)).status_code
                    for _ in range(count)
                ]

            assert await call(2) == [200, 200]
            isolated_nats.stop()

            async def disconnected() -> bool:
                return not nats_client.is_connected

            await _until(disconnected, "the gateway saw NATS go")
            with capture_logs() as logs:
                during = await call(2 * LIMIT)
            # Alone (the only replica it knew), its share is the whole quota: never more.
            assert during == [200] * (LIMIT - 2) + [429] * (LIMIT + 2)
            assert len([log for log in logs if "decided locally" in log["event"]]) == 1
            assert await fallback_gauge(http, alone) == 1

            isolated_nats.start()  # same port and store: the client reconnects

            async def shared_again() -> bool:
                return await fallback_gauge(http, alone) == 0

            await _until(shared_again, "the limiter left local mode")
        # What it granted alone is in the shared counters: a new replica has nothing to give.
        async with serving(create_gateway(settings)) as newcomer:
            refused = await http.get(f"{newcomer.url}/api/demo/hello", headers=key)
            assert refused.status_code == 429
    finally:
        isolated_nats.stop()
