"""Events missed while NATS was away cannot keep a revoked key alive: on reconnect every cached
key is re-checked with the keys service."""

import asyncio

from tollgate_gateway.app import create_app as create_gateway
from tollgate_shared.embedded import EmbeddedNats
from tollgate_shared.testing.http import serving

from .conftest import bearer


async def test_reconnect_rechecks_cached_keys(http, gateway, gateway_settings, sign_up, tmp_path):
    # This replica hears a NATS server of its own, so it misses the revocation event entirely.
    isolated_nats = EmbeddedNats(tmp_path / "nats")
    isolated_nats.start()
    try:
        settings = gateway_settings(nats_url=isolated_nats.url)
        async with serving(create_gateway(settings)) as isolated:
            account = await sign_up()
            admin = bearer(account["tokens"]["access_token"])
            key = (
                await http.post(f"{gateway.url}/v1/keys", json={"name": "k"}, headers=admin)
            ).json()
            hello = f"{isolated.url}/api/demo/hello"
            assert (await http.get(hello, headers=bearer(key["key"]))).status_code == 200

            await http.delete(f"{gateway.url}/v1/keys/{key['id']}", headers=admin)
            still_cached = await http.get(hello, headers=bearer(key["key"]))
            assert still_cached.status_code == 200  # the event went to another NATS

            isolated_nats.stop()
            isolated_nats.start()  # same port: the client reconnects
            nats_client = isolated._server.config.app.state.nats  # type: ignore[attr-defined]
            for _ in range(100):
                await asyncio.sleep(0.05)
                if nats_client.is_connected and nats_client.stats["reconnects"] >= 1:
                    break
            assert nats_client.stats["reconnects"] >= 1
            # The client counts the reconnect before its callback (which marks the cache stale)
            # has run: wait for the refusal with a deadline instead of expecting it at once.
            for _ in range(100):
                refused = await http.get(hello, headers=bearer(key["key"]))
                if refused.status_code != 200:
                    break
                await asyncio.sleep(0.05)
            assert refused.status_code == 401
    finally:
        isolated_nats.stop()
