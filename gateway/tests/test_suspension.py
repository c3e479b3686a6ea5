"""An organisation suspended for non-payment (ADR 0022), through a real gateway and a real keys
service: billing's subscription event (published on the BILLING stream) suspends it in keys,
keys' organization.updated evicts its cached keys, and its calls to the operator's API are
refused with 402 before the upstream and the rate limiter, while Tollgate's own /v1 routes stay
open. Paying (the same event, status active, a newer version) lets calls pass again."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tollgate_gateway.app import create_app as create_gateway
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import ensure_stream, stream_for_service
from tollgate_shared.identity import TokenSigner
from tollgate_shared.testing.http import RunningServer, serving

from .conftest import PASSWORD, bearer
from .test_quotas import CountingUpstream
from .usage_stream import (
    jetstream,
    last_sequence,
    spool_of,
    usage_events_after,
    wait_until_published,
)

DEADLINE_SECONDS = 20.0
# Above any version a billing app sharing this NATS server publishes for these organisations
# (billing test suites make every signup a customer, with versions from 1).
VERSION_BASE = 10**12
PROBLEM_TYPE = "https://tollgate.dev/problems/organization-suspended"


@pytest.fixture
async def counting_upstream() -> AsyncIterator[tuple[CountingUpstream, RunningServer]]:
    upstream = CountingUpstream()
    async with serving(upstream.app()) as server:
        yield upstream, server


@pytest.fixture
async def paid_gateway(
    gateway_settings, tmp_path, counting_upstream
) -> AsyncIterator[RunningServer]:
    """A gateway with one operator route, /api/paid, to a counting upstream; cached keys are
    re-checked only after an hour, so only keys' organisation event can show a change."""
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f"""
[[routes]]
name = "paid"
prefix = "/api/paid"
upstream = "{counting_upstream[1].url}"
credential = "any"
"""
    )
    settings = gateway_settings(routes_file=routes, key_cache_refresh_seconds=3600)
    async with serving(create_gateway(settings)) as server:
        yield server


async def publish_subscription(nats_url: str, org_id: str, *, status: str, version: int) -> None:
    """tollgate.billing.subscription.updated as billing publishes it, on its stream."""
    event = CloudEvent(
        source="/tollgate/billing",
        type="tollgate.billing.subscription.updated",
        orgid=org_id,
        data={
            "organization_id": org_id,
            "plan": "free",
            "rate_limit_tier": "free",
            "status": status,
            "version": VERSION_BASE + version,
        },
    )
    async with jetstream(nats_url) as js:
        await ensure_stream(js, stream_for_service("billing"))
        await js.publish(
            event.type,
            json.dumps(event.model_dump(mode="json", exclude_none=True)).encode(),
            headers={"Nats-Msg-Id": event.id},
        )


async def wait_for_status(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], status: int
) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while (response := await http.get(url, headers=headers)).status_code != status:
        assert loop.time() < deadline, f"still {response.status_code}: {response.text}"
        await asyncio.sleep(0.05)
    return response


def refusals() -> float:
    return REGISTRY.get_sample_value("tollgate_gateway_suspension_refusals_total") or 0.0


def key_hour_remaining(response: httpx.Response) -> int:
    [field] = [part for part in response.headers["ratelimit"].split(", ") if "key-hour" in part]
    return int(field.split(";r=")[1].split(";")[0])


async def test_a_suspended_organisation_pays_to_use_the_operators_api_again(
    http, gateway, paid_gateway, counting_upstream, sign_up, nats_url
):
    upstream = counting_upstream[0]
    account: dict[str, Any] = await sign_up()
    org_id = account["organization"]["id"]
    created = await http.post(
        f"{gateway.url}/v1/keys",
        json={"name": "metered", "rate_limit": {"per_hour": 1000}},
        headers=bearer(account["tokens"]["access_token"]),
    )
    assert created.status_code == 201, created.text
    key = bearer(created.json()["key"])
    paid = f"{paid_gateway.url}/api/paid/x"
    assert (await http.get(paid, headers=key)).status_code == 200  # cached from here on

    await publish_subscription(nats_url, org_id, status="suspended", version=1)
    await wait_for_status(http, paid, key, 402)
    served_before = len(upstream.seen)
    refused_before = refusals()

    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        refused = [await http.post(paid, headers=key, content=b"no") for _ in range(3)]
        await wait_until_published(spool_of(paid_gateway))
        events = [e for e in await usage_events_after(js, start) if e.orgid == org_id]

    assert len(upstream.seen) == served_before  # never forwarded
    assert refusals() - refused_before == 3
    answer = refused[0]
    assert answer.status_code == 402
    assert answer.headers["content-type"] == "application/problem+json"
    assert "ratelimit" not in answer.headers  # the limiter was not asked
    body = answer.json()
    assert body["type"] == PROBLEM_TYPE
    assert body["title"] == "Organisation suspended"
    assert body["status"] == 402
    assert "GET /v1/billing/invoices" in body["detail"]
    assert "POST /v1/billing/invoices/{id}/pay" in body["detail"]
    assert body["request_id"] == answer.headers["x-request-id"]
    # Recorded like a quota refusal: one usage event per refused call, with the status sent.
    assert [(e.data["route"], e.data["status"]) for e in events] == [("paid", 402)] * 3

    # Tollgate's own routes stay open: the organisation can see why, and pay.
    organization = await http.get(f"{paid_gateway.url}/v1/organization", headers=key)
    assert organization.status_code == 200, organization.text
    assert organization.json()["suspended"] is True
    remaining = key_hour_remaining(organization)  # rate limited like any call with the key
    assert (await http.get(f"{paid_gateway.url}/v1/limits", headers=key)).status_code == 200

    # A user signing in now gets a token that says so; it is refused the same way.
    login = await http.post(
        f"{paid_gateway.url}/v1/auth/login",
        json={"email": account["user"]["email"], "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    user = bearer(login.json()["access_token"])
    user_refused = await http.get(paid, headers=user)
    assert user_refused.status_code == 402
    assert user_refused.json()["type"] == PROBLEM_TYPE
    assert (await http.get(f"{paid_gateway.url}/v1/me", headers=user)).status_code == 200
    assert len(upstream.seen) == served_before

    # Paid: billing publishes the subscription active again, with a newer version.
    await publish_subscription(nats_url, org_id, status="active", version=2)
    passed = await wait_for_status(http, paid, key, 200)
    assert len(upstream.seen) == served_before + 1
    # The refused calls (those while waiting too) spent no rate-limit token.
    assert key_hour_remaining(passed) == remaining - 1


async def test_another_organisation_is_not_affected(
    http, paid_gateway, counting_upstream, sign_up, nats_url
):
    suspended, other = await sign_up(), await sign_up()
    suspended_key = bearer(suspended["api_key"]["key"])
    other_key = bearer(other["api_key"]["key"])
    await publish_subscription(
        nats_url, suspended["organization"]["id"], status="suspended", version=1
    )
    await wait_for_status(http, f"{paid_gateway.url}/api/paid/x", suspended_key, 402)
    served = await http.get(f"{paid_gateway.url}/api/paid/x", headers=other_key)
    assert served.status_code == 200
    assert counting_upstream[0].seen[-1] == "GET /x"


async def test_a_user_token_tells_the_state_it_was_signed_with_until_refreshed(
    http, paid_gateway, counting_upstream, sign_up, nats_url
):
    """The gateway learns a user's organisation from the access token (ADR 0001), so a token
    signed before the suspension passes until it expires (15 minutes at most) or is refreshed;
    the same holds after paying, where refreshing is how a user gets through at once."""
    account = await sign_up()
    key = bearer(account["api_key"]["key"])
    paid = f"{paid_gateway.url}/api/paid/x"
    await publish_subscription(
        nats_url, account["organization"]["id"], status="suspended", version=1
    )
    await wait_for_status(http, paid, key, 402)

    signed_before = bearer(account["tokens"]["access_token"])
    assert (await http.get(paid, headers=signed_before)).status_code == 200
    refreshed = await http.post(
        f"{paid_gateway.url}/v1/auth/refresh",
        json={"refresh_token": account["tokens"]["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text
    signed_after = bearer(refreshed.json()["access_token"])
    assert (await http.get(paid, headers=signed_after)).status_code == 402


async def test_a_token_signed_before_suspension_existed_is_not_suspended(
    http, paid_gateway, counting_upstream, token_keys
):
    signer = TokenSigner(
        token_keys[0], issuer="tollgate-keys", audience="tollgate-gateway", ttl_seconds=60
    )
    claims = {"sub": str(uuid.uuid4()), "org": str(uuid.uuid4()), "roles": ["org_admin"]}
    url = f"{paid_gateway.url}/api/paid/old"
    assert (await http.get(url, headers=bearer(signer.sign(claims)))).status_code == 200
    suspended = signer.sign({**claims, "suspended": True})
    assert (await http.get(url, headers=bearer(suspended))).status_code == 402
    assert counting_upstream[0].seen == ["GET /old"]
