"""NATS stopped: requests are answered as usual, their events wait in the spool, and when NATS
comes back exactly those events reach the USAGE stream, in the order of the requests."""

import asyncio

from tollgate_gateway.app import create_app as create_gateway
from tollgate_shared.embedded import EmbeddedNats
from tollgate_shared.testing.http import serving

from .conftest import bearer
from .usage_stream import (
    DEADLINE_SECONDS,
    jetstream,
    last_sequence,
    spool_of,
    usage_events_after,
    wait_until_published,
)

REQUESTS = 30


async def _until(condition, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_events_of_an_outage_are_published_in_order_when_nats_returns(
    http, gateway_settings, sign_up, tmp_path
):
    isolated_nats = EmbeddedNats(tmp_path / "nats")
    isolated_nats.start()
    try:
        settings = gateway_settings(nats_url=isolated_nats.url, usage_publish_timeout_seconds=1)
        async with serving(create_gateway(settings)) as isolated:
            account = await sign_up()
            org_id, key = account["organization"]["id"], bearer(account["api_key"]["key"])
            spool = spool_of(isolated)
            nats_client = isolated._server.config.app.state.nats  # type: ignore[attr-defined]
            async with jetstream(isolated_nats.url) as js:
                start = await last_sequence(js)
            before = await http.get(f"{isolated.url}/api/demo/hello", headers=key)
            assert before.status_code == 200
            await wait_until_published(spool)

            isolated_nats.stop()
            await _until(lambda: not nats_client.is_connected, "the gateway saw NATS go")
            during = []
            for number in range(REQUESTS):
                response = await http.get(f"{isolated.url}/api/demo/echo/{number}", headers=key)
                assert response.status_code == 200  # answered without NATS
                during.append(response.headers["x-request-id"])
            assert spool.lag_bytes > 0  # waiting in the spool

            isolated_nats.start()  # same port and store: the client reconnects
            await wait_until_published(spool)
            async with jetstream(isolated_nats.url) as js:
                events = await usage_events_after(js, start)
    finally:
        isolated_nats.stop()

    ids = [event.id for event in events if event.orgid == org_id]
    assert ids == [before.headers["x-request-id"], *during]
    assert [event.data["status"] for event in events] == [200] * (REQUESTS + 1)
