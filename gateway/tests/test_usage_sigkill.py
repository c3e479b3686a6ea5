"""A gateway killed with SIGKILL loses no usage event of a request it answered: the next
process on the same spool folder publishes them, and JetStream drops what was already there.

Real processes, started like the launcher starts them (python -m tollgate_gateway.cli serve).
"""

from tollgate_shared.embedded import EmbeddedNats

from .conftest import bearer
from .gateway_processes import GatewayProcess, gateway_environment
from .usage_stream import jetstream, last_sequence, usage_events_after

REQUESTS = 40


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
