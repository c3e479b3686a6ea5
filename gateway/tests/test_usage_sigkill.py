"""A gateway killed with SIGKILL loses no usage event of a request it answered: the next
process on the same spool folder publishes them, and JetStream drops what was already there.

Real processes, started like the launcher starts them (python -m tollgate_gateway.cli serve).
"""

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tollgate_local.processes import ManagedProcess
from tollgate_shared.embedded import EmbeddedNats, free_port

from .conftest import bearer
from .usage_stream import DEADLINE_SECONDS, jetstream, last_sequence, usage_events_after

REQUESTS = 40


class GatewayProcess:
    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            name=f"gateway-{self.port}",
            module="tollgate_gateway.cli",
            args=["serve", "--port", str(self.port)],
            env=env,
            log_dir=log_dir,
        )

    async def start(self) -> "GatewayProcess":
        self.process.start()
        # In a thread: the keys service and the upstream answer from this test's event loop.
        await asyncio.to_thread(self.process.wait_until_ready, f"{self.url}/readyz", timeout=60)
        return self

    def kill(self) -> None:
        assert self.process.running
        self.process.kill()  # SIGKILL: no shutdown hook runs

    async def metric(self, http, name: str, **labels: str) -> float:
        text = (await http.get(f"{self.url}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                wanted = all(sample.labels.get(label) == value for label, value in labels.items())
                if sample.name == name and wanted:
                    return float(sample.value)
        return 0.0

    async def wait_until_published(self, http) -> None:
        deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
        while await self.metric(http, "tollgate_gateway_usage_spool_lag_bytes") > 0:
            assert asyncio.get_running_loop().time() < deadline, "spool not published"
            await asyncio.sleep(0.05)


def gateway_environment(
    *, nats_url, identity_keys, token_keys, keys_server, routes_file, spool_dir
) -> dict[str, str]:
    return {
        "TOLLGATE_ENV": "test",
        "TOLLGATE_LOG_FORMAT": "json",
        "TOLLGATE_NATS_URL": nats_url,
        "TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY": identity_keys[0],
        "TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY": token_keys[1],
        "TOLLGATE_GATEWAY_KEYS_URL": keys_server.url,
        "TOLLGATE_GATEWAY_ROUTES_FILE": str(routes_file),
        "TOLLGATE_GATEWAY_USAGE_SPOOL_DIR": str(spool_dir),
        "TOLLGATE_GATEWAY_USAGE_PUBLISH_TIMEOUT_SECONDS": "1",
    }


async def test_sigkill_loses_no_answered_request_and_duplicates_none(
    http, sign_up, identity_keys, token_keys, keys_server, routes_file, tmp_path
):
    nats_server = EmbeddedNats(tmp_path / "nats")
    nats_server.start()
    env = gateway_environment(
        nats_url=nats_server.url,
        identity_keys=identity_keys,
        token_keys=token_keys,
        keys_server=keys_server,
        routes_file=routes_file,
        spool_dir=tmp_path / "spool",
    )
    running: list[GatewayProcess] = []

    async def start_gateway() -> GatewayProcess:
        running.append(GatewayProcess(env=env, log_dir=tmp_path / "logs"))
        return await running[-1].start()

    async def call(gateway: GatewayProcess, key: dict[str, str], count: int) -> list[str]:
        ids = []
        for number in range(count):
            response = await http.get(f"{gateway.url}/api/demo/echo/{number}", headers=key)
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
        return ids

    try:
        # 1. NATS stops, requests are answered, the gateway is killed before NATS returns.
        first = await start_gateway()
        outage = await sign_up()
        outage_key = bearer(outage["api_key"]["key"])
        async with jetstream(nats_server.url) as js:
            start = await last_sequence(js)
        warm_up = await call(first, outage_key, 1)  # also caches the key in that process
        await first.wait_until_published(http)
        nats_server.stop()
        during_outage = await call(first, outage_key, REQUESTS)
        first.kill()
        nats_server.start()

        second = await start_gateway()  # same spool folder, NATS back
        await second.wait_until_published(http)
        async with jetstream(nats_server.url) as js:
            events = await usage_events_after(js, start)
        outage_ids = [event.id for event in events if event.orgid == outage["organization"]["id"]]
        assert outage_ids == warm_up + during_outage  # all of them, once each, in order

        # 2. NATS up, killed right after the last answer, cursor lost as if killed between
        # publishing and saving it: every event is published again, JetStream keeps one copy.
        busy = await sign_up()
        answered = await call(second, bearer(busy["api_key"]["key"]), REQUESTS)
        second.kill()
        spool_slot = tmp_path / "spool" / "0"
        (spool_slot / "cursor.json").unlink(missing_ok=True)

        third = await start_gateway()
        await third.wait_until_published(http)
        republished = await third.metric(
            http, "tollgate_gateway_usage_events_published_total", outcome="stored"
        ) + await third.metric(
            http, "tollgate_gateway_usage_events_published_total", outcome="duplicate"
        )
        assert republished == REQUESTS  # the killed process's whole segment went again
        async with jetstream(nats_server.url) as js:
            events = await usage_events_after(js, start)
        busy_ids = [event.id for event in events if event.orgid == busy["organization"]["id"]]
        assert busy_ids == answered
    finally:
        for gateway in running:
            gateway.process.stop()
        nats_server.stop()
