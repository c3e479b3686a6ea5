"""A revocation made through one replica is seen by every replica through NATS."""

import asyncio
import statistics
import time

from .conftest import bearer

TRIALS = 5


async def _refused_everywhere(http, urls, key, started):
    """Seconds until every replica refuses the key (each polled independently)."""

    async def until_refused(url):
        while True:
            response = await http.get(f"{url}/api/demo/hello", headers=bearer(key))
            if response.status_code == 401:
                return time.perf_counter() - started
            assert response.status_code == 200
            await asyncio.sleep(0.002)

    return max(await asyncio.wait_for(asyncio.gather(*(until_refused(u) for u in urls)), 5))


async def test_revocation_reaches_both_replicas(http, gateway, replicas, sign_up, record_property):
    account = await sign_up()
    admin = bearer(account["tokens"]["access_token"])
    urls = [replica.url for replica in replicas]
    timings = []
    for trial in range(TRIALS):
        created = await http.post(
            f"{gateway.url}/v1/keys", json={"name": f"t{trial}"}, headers=admin
        )
        key = created.json()
        for url in urls:  # warm both caches: from now on they answer without the keys service
            assert (
                await http.get(f"{url}/api/demo/hello", headers=bearer(key["key"]))
            ).status_code == 200
        # Revoked through the first gateway: the replicas only learn it through NATS.
        revoked = await http.delete(f"{gateway.url}/v1/keys/{key['id']}", headers=admin)
        assert revoked.status_code == 200  # committed: the clock starts now
        timings.append(await _refused_everywhere(http, urls, key["key"], time.perf_counter()))
    record_property(
        "measurement",
        f"revocation through one gateway refused by 2 other replicas (NATS), {TRIALS} trials: "
        f"median {statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms "
        "(from the revoke call's answer: outbox relay, JetStream, both replicas' caches)",
    )
    assert len(timings) == TRIALS
