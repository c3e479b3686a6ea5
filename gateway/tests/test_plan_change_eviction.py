"""A plan change (keys' organization.updated) evicts the org's cached keys on every replica, so
the new plan's rate limits apply at once rather than at the next cache refresh."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import nats
import psycopg

from tollgate_gateway.app import create_app as create_gateway
from tollgate_gateway.authentication.key_cache import KeyCache, VerifiedKey
from tollgate_gateway.rate_limits.policies import Limits
from tollgate_shared.testing.http import serving

from .conftest import bearer

PLANS = {"free": Limits(per_minute=5), "pro": Limits(per_minute=50), "enterprise": Limits()}


def verified(org_id: uuid.UUID) -> VerifiedKey:
    return VerifiedKey(
        key_id=uuid.uuid4(),
        org_id=org_id,
        name="k",
        environment="live",
        scopes=["read"],
        plan="free",
    )


def test_evicting_an_organisation_forgets_its_keys_only():
    cache = KeyCache(max_entries=100, negative_seconds=5)
    acme, globex = uuid.uuid4(), uuid.uuid4()
    cache.put("a1", verified(acme))
    cache.put("a2", verified(acme))
    cache.put("g1", verified(globex))
    generation = cache.generation
    assert cache.evict_organization(acme) == 2
    assert (cache.get("a1"), cache.get("a2")) == (None, None)
    assert cache.get("g1") is not None
    # A lookup started before the eviction must not cache its (maybe old-plan) answer.
    assert cache.generation > generation
    assert cache.evict_organization(uuid.uuid4()) == 0


async def test_the_new_plan_applies_as_soon_as_the_organisation_event_arrives(
    http, gateway_settings, keys_settings, sign_up, nats_url
):
    # A refresh far away: only the event can make the gateway see the new plan in time.
    settings = gateway_settings(rate_limit_plans=PLANS, key_cache_refresh_seconds=3600)
    async with serving(create_gateway(settings)) as gateway:
        account = await sign_up()
        key, org_id = account["api_key"]["key"], account["organization"]["id"]
        first = await http.get(f"{gateway.url}/v1/limits", headers=bearer(key))
        assert first.json()["plan"] == "free"
        assert first.headers["RateLimit-Policy"].startswith('"org-minute";q=5;')

        # What the keys service does when billing's subscription changes: the org row, then
        # the event (through its outbox; published here directly).
        async with await psycopg.AsyncConnection.connect(
            keys_settings.database_url.replace("+psycopg", ""), autocommit=True
        ) as connection:
            # A version above any a billing app sharing the NATS server publishes for this org
            # (billing test suites make every signup a customer on the free plan).
            await connection.execute(
                "UPDATE keys.organizations SET plan = 'pro', plan_version = 1000000 WHERE id = %s",
                (org_id,),
            )
        cached = await http.get(f"{gateway.url}/v1/limits", headers=bearer(key))
        assert cached.json()["plan"] == "free"  # served from the cache until told

        client = await nats.connect(nats_url)
        try:
            event = {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "/tollgate/keys",
                "type": "tollgate.keys.organization.updated",
                "time": datetime.now(UTC).isoformat(),
                "orgid": org_id,
                "data": {"organization_id": org_id, "name": "Acme", "plan": "pro"},
            }
            await client.publish(event["type"], json.dumps(event).encode())
            await client.flush()
        finally:
            await client.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while (limits := await http.get(f"{gateway.url}/v1/limits", headers=bearer(key))).json()[
            "plan"
        ] != "pro":
            assert loop.time() < deadline, "the organisation's keys were not evicted"
            await asyncio.sleep(0.02)
        assert limits.headers["RateLimit-Policy"].startswith('"org-minute";q=50;')
        served = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))
        assert served.headers["RateLimit-Policy"] == '"org-minute";q=50;w=60'
