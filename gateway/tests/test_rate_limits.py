"""Rate limits through a real gateway: plan tiers, per-key overrides, org quotas shared by keys,
several windows, exact headers, 429 problems, GET /v1/limits, and a restart keeping counts."""

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from tollgate_gateway.app import create_app as create_gateway
from tollgate_gateway.rate_limits.policies import Limits
from tollgate_shared.testing.http import RunningServer, serving

from .conftest import bearer

TIGHT_PLANS = {
    "free": Limits(per_minute=5, per_day=1000),
    "pro": Limits(per_minute=50),
    "enterprise": Limits(),
}


@pytest.fixture
def create_key(http, gateway) -> Callable[..., Any]:
    async def create(account: dict[str, Any], **rate_limit: int) -> str:
        response = await http.post(
            f"{gateway.url}/v1/keys",
            json={"name": "limited", **({"rate_limit": rate_limit} if rate_limit else {})},
            headers=bearer(account["tokens"]["access_token"]),
        )
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    return create


@pytest.fixture
async def tight_gateway(gateway_settings) -> AsyncIterator[RunningServer]:
    """A gateway whose plans allow 5 requests a minute on the free tier."""
    async with serving(create_gateway(gateway_settings(rate_limit_plans=TIGHT_PLANS))) as server:
        yield server


def reset_of(window: int) -> int:
    return math.ceil((time.time() // window + 1) * window - time.time())


def parse(field: str) -> dict[str, dict[str, int]]:
    """`"name";a=1;b=2, ...` → {name: {a: 1, b: 2}}"""
    parsed = {}
    for member in field.split(", "):
        name, *parameters = member.split(";")
        parsed[name.strip('"')] = {
            key: int(value) for key, value in (parameter.split("=") for parameter in parameters)
        }
    return parsed


async def get(http, gateway: RunningServer, key: str, path: str = "/api/demo/hello"):
    return await http.get(f"{gateway.url}{path}", headers=bearer(key))


async def test_free_plan_headers_on_every_forwarded_response(http, gateway, sign_up):
    key = (await sign_up())["api_key"]["key"]
    first, second = await get(http, gateway, key), await get(http, gateway, key)
    assert first.status_code == second.status_code == 200
    assert (
        first.headers["RateLimit-Policy"] == '"org-hour";q=1000;w=3600, "org-day";q=10000;w=86400'
    )
    assert re.fullmatch(
        r'"org-hour";r=999;t=\d+, "org-day";r=9999;t=\d+', first.headers["RateLimit"]
    )
    limits = parse(second.headers["RateLimit"])
    assert limits["org-hour"]["r"] == 998 and limits["org-day"]["r"] == 9998
    assert abs(limits["org-hour"]["t"] - reset_of(3600)) <= 1
    assert abs(limits["org-day"]["t"] - reset_of(86400)) <= 1


async def test_key_override_refuses_with_429_problem(http, gateway, sign_up, create_key):
    key = await create_key(await sign_up(), per_minute=3)
    answers = [await get(http, gateway, key) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert parse(answers[2].headers["RateLimit"])["key-minute"]["r"] == 0
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == "https://tollgate.dev/problems/rate-limited"
    assert body["status"] == 429
    assert body["violated-policies"] == ["key-minute"]
    assert refused.headers["RateLimit-Policy"] == (
        '"org-hour";q=1000;w=3600, "org-day";q=10000;w=86400, "key-minute";q=3;w=60'
    )
    limits = parse(refused.headers["RateLimit"])
    assert limits["key-minute"]["r"] == 0
    assert int(refused.headers["Retry-After"]) == limits["key-minute"]["t"]
    assert limits["org-hour"]["r"] == 997  # the refused request spent nothing


async def test_refused_requests_never_reach_the_upstream(http, gateway, sign_up, create_key):
    key = await create_key(await sign_up(), per_minute=1)
    assert (await get(http, gateway, key)).status_code == 200
    refused = await http.post(
        f"{gateway.url}/api/demo/echo", headers=bearer(key), content=b"must not arrive"
    )
    assert refused.status_code == 429
    assert "headers" not in refused.json()  # not the echo upstream's answer


async def test_org_quota_is_shared_by_all_its_keys(
    http, tight_gateway, gateway, sign_up, create_key
):
    account = await sign_up()
    first, second = account["api_key"]["key"], await create_key(account)
    assert [(await get(http, tight_gateway, first)).status_code for _ in range(3)] == [200] * 3
    statuses = [(await get(http, tight_gateway, second)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await get(http, tight_gateway, first)
    assert refused.json()["violated-policies"] == ["org-minute"]
    # Another org is not affected.
    other = (await sign_up())["api_key"]["key"]
    assert (await get(http, tight_gateway, other)).status_code == 200


async def test_each_window_is_enforced(http, gateway, sign_up, create_key):
    key = await create_key(await sign_up(), per_second=2, per_minute=5)
    await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.02)  # at a second's start
    burst = [await get(http, gateway, key) for _ in range(3)]
    assert [answer.status_code for answer in burst] == [200, 200, 429]
    assert burst[2].json()["violated-policies"] == ["key-second"]
    assert burst[2].headers["Retry-After"] == "1"
    statuses = []
    while len(statuses) < 4:
        await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.02)
        statuses += [(await get(http, gateway, key)).status_code for _ in range(2)]
    refused = await get(http, gateway, key)
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert refused.json()["violated-policies"] == ["key-minute"]


async def test_limits_endpoint_shows_policies_without_spending(http, gateway, sign_up, create_key):
    account = await sign_up()
    key = await create_key(account, per_hour=20)
    for _ in range(3):
        assert (await get(http, gateway, key)).status_code == 200
    views = [await get(http, gateway, key, "/v1/limits") for _ in range(2)]
    assert views[0].json() == views[1].json()
    body = views[0].json()
    assert body["plan"] == "free"
    assert [
        (p["name"], p["scope"], p["window"], p["quota"], p["remaining"]) for p in body["policies"]
    ] == [
        ("org-hour", "organization", "hour", 1000, 997),
        ("org-day", "organization", "day", 10000, 9997),
        ("key-hour", "key", "hour", 20, 17),
    ]
    assert views[0].headers["RateLimit-Policy"].endswith('"key-hour";q=20;w=3600')

    # A user of the org sees the org's policies; the other key's spending shows there.
    user = await http.get(
        f"{gateway.url}/v1/limits", headers=bearer(account["tokens"]["access_token"])
    )
    assert [(p["name"], p["remaining"]) for p in user.json()["policies"]] == [
        ("org-hour", 997),
        ("org-day", 9997),
    ]
    anonymous = await http.get(f"{gateway.url}/v1/limits")
    assert anonymous.status_code == 401


async def test_user_tokens_are_not_limited_by_the_plan(http, tight_gateway, sign_up):
    account = await sign_up()
    token = account["tokens"]["access_token"]
    statuses = [(await get(http, tight_gateway, token, "/v1/me")).status_code for _ in range(8)]
    assert statuses == [200] * 8
    assert "RateLimit" not in (await get(http, tight_gateway, token, "/v1/me")).headers


async def test_plan_tier_is_read_from_the_org(http, gateway_settings, keys_settings, sign_up):
    pro, enterprise = await sign_up(), await sign_up()
    async with await psycopg.AsyncConnection.connect(
        keys_settings.database_url.replace("+psycopg", ""), autocommit=True
    ) as connection:
        for account, plan in ((pro, "pro"), (enterprise, "enterprise")):
            # Standing in for billing: a version above any a billing app sharing the NATS
            # server publishes for these orgs (it makes them customers on the free plan).
            await connection.execute(
                "UPDATE keys.organizations SET plan = %s, plan_version = 1000000 WHERE id = %s",
                (plan, account["organization"]["id"]),
            )
    async with serving(create_gateway(gateway_settings(rate_limit_plans=TIGHT_PLANS))) as fresh:
        pro_answer = await get(http, fresh, pro["api_key"]["key"])
        assert pro_answer.headers["RateLimit-Policy"] == '"org-minute";q=50;w=60'
        unlimited = [await get(http, fresh, enterprise["api_key"]["key"]) for _ in range(8)]
        assert {answer.status_code for answer in unlimited} == {200}
        assert "RateLimit-Policy" not in unlimited[0].headers


async def test_a_restart_does_not_hand_out_a_fresh_allowance(
    http, gateway_settings, sign_up, create_key
):
    key = await create_key(await sign_up(), per_hour=5)
    async with serving(create_gateway(gateway_settings())) as before:
        assert [(await get(http, before, key)).status_code for _ in range(3)] == [200] * 3
    async with serving(create_gateway(gateway_settings())) as after:
        statuses = [(await get(http, after, key)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
