"""Quotas per billing period through a real gateway: entitlement states arrive as NATS events
(real NATS) and from a snapshot served by a stub standing in for metering's internal endpoint.

Hard and exceeded refuses with a 429 problem before the upstream and the rate limiter; grace,
and soft and exceeded, pass with Tollgate-Quota-Warning; usage events carry the flag.
"""

import asyncio
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
import structlog
from nats.aio.client import Client
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tollgate_gateway.app import create_app as create_gateway
from tollgate_gateway.quotas.feed import EntitlementFeed
from tollgate_shared.embedded import EmbeddedNats
from tollgate_shared.events.envelope import new_event
from tollgate_shared.identity import IDENTITY_HEADER, Identity, identity_verifier
from tollgate_shared.testing.http import RunningServer, serving

from .conftest import bearer
from .usage_stream import (
    jetstream,
    last_sequence,
    spool_of,
    usage_events_after,
    wait_until_published,
)

DEADLINE_SECONDS = 20.0
# Added to every version here: a metering service sharing this NATS server (another suite's
# tests) may evaluate these organisations from their usage events and publish its own states,
# with small versions, which must never outrank the states a test sets.
VERSION_BASE = 10**12
UPDATED = "tollgate.metering.entitlement.updated"
REMOVED = "tollgate.metering.entitlement.removed"


class StubMetering:
    """Metering's GET /internal/v1/entitlements, answering what the test sets."""

    def __init__(self, identity_public_key: str) -> None:
        self.items: list[dict[str, Any]] = []
        self.status = 200
        self.callers: list[Identity] = []
        self._verifier = identity_verifier(identity_public_key)

    def app(self) -> Starlette:
        async def snapshot(request: Request) -> JSONResponse:
            token = request.headers.get(IDENTITY_HEADER, "")
            self.callers.append(Identity.from_claims(self._verifier.verify(token)))
            if self.status != 200:
                return JSONResponse({"title": "unavailable"}, status_code=self.status)
            return JSONResponse({"items": self.items})

        return Starlette(routes=[Route("/internal/v1/entitlements", snapshot)])


class CountingUpstream:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def app(self) -> Starlette:
        async def anything(request: Request) -> JSONResponse:
            self.seen.append(f"{request.method} {request.url.path}")
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


@pytest.fixture
async def metering(identity_keys) -> AsyncIterator[tuple[StubMetering, RunningServer]]:
    stub = StubMetering(identity_keys[1])
    async with serving(stub.app()) as server:
        yield stub, server


@pytest.fixture
async def counting_upstream() -> AsyncIterator[tuple[CountingUpstream, RunningServer]]:
    upstream = CountingUpstream()
    async with serving(upstream.app()) as server:
        yield upstream, server


@pytest.fixture
def quota_settings(gateway_settings, tmp_path, metering, counting_upstream):
    """Settings of a gateway with two operator routes: /api/metered (meter api_requests) and
    /api/search (meter search_calls), both to a counting upstream, and the metering stub."""
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f"""
[[routes]]
name = "metered"
prefix = "/api/metered"
upstream = "{counting_upstream[1].url}"
credential = "any"

[[routes]]
name = "search"
prefix = "/api/search"
upstream = "{counting_upstream[1].url}"
credential = "any"
meter = "search_calls"
"""
    )

    def make(**overrides: Any):
        values = {
            "routes_file": routes,
            "metering_url": metering[1].url,
            "quota_resync_seconds": 600,  # reloads in these tests come from events or reconnects
        }
        return gateway_settings(**(values | overrides))

    return make


@pytest.fixture
async def quota_gateway(quota_settings) -> AsyncIterator[RunningServer]:
    async with serving(create_gateway(quota_settings())) as server:
        yield server


@pytest.fixture
async def publisher(nats_url) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


def feed_of(server: RunningServer) -> EntitlementFeed:
    feed: EntitlementFeed = server._server.config.app.state.entitlement_feed  # type: ignore[attr-defined]
    return feed


def next_month_start() -> datetime:
    now = datetime.now(UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def entitlement(
    org_id: str,
    *,
    version: int,
    status: str,
    meter: str = "api_requests",
    mode: str = "hard",
    limit: float | None = 100000,
    used: float = 110001,
    period_end: datetime | None = None,
) -> dict[str, Any]:
    end = period_end or next_month_start()
    start = (end - timedelta(days=1)).replace(day=1)
    return {
        "organization_id": org_id,
        "meter": meter,
        "limit": limit,
        "mode": mode,
        "grace_percent": 10,
        "used": used,
        "status": status,
        "period_start": iso(start),
        "period_end": iso(end),
        "version": VERSION_BASE + version,
    }


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.02)


async def publish(client: Client, gateway: RunningServer, *states: dict[str, Any]) -> None:
    """Publish the states in order, then a marker state; return once the gateway applied the
    marker, so it has seen everything before it (one publisher, one subscription: in order)."""
    marker = entitlement(str(uuid.uuid4()), version=1, status="within", used=1)
    for state in (*states, marker):
        subject = REMOVED if state["status"] == "removed" else UPDATED
        event = new_event(
            service="metering", type_=subject, data=state, org_id=state["organization_id"]
        )
        await client.publish(subject, event.to_json())
    await client.flush()
    states_held = feed_of(gateway).states
    await until(
        lambda: (
            states_held.version_of(uuid.UUID(marker["organization_id"]), "api_requests")
            == marker["version"]
        ),
        "the marker event applied",
    )


def decisions(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tollgate_gateway_quota_decisions_total", {"outcome": outcome}
    )
    return value or 0.0


def seconds_until(moment: datetime) -> int:
    return math.ceil(moment.timestamp() - time.time())


def without_reset(field: str) -> tuple[str, list[int]]:
    return re.sub(r";reset=\d+", ";reset=R", field), [
        int(reset) for reset in re.findall(r";reset=(\d+)", field)
    ]


async def test_hard_exceeded_is_refused_before_the_upstream_and_the_rate_limiter(
    http, gateway, quota_gateway, counting_upstream, publisher, sign_up, nats_url
):
    upstream = counting_upstream[0]
    account = await sign_up()
    org_id = account["organization"]["id"]
    created = await http.post(
        f"{gateway.url}/v1/keys",
        json={"name": "limited", "rate_limit": {"per_hour": 10}},
        headers=bearer(account["tokens"]["access_token"]),
    )
    key = bearer(created.json()["key"])
    end = next_month_start()
    await publish(publisher, quota_gateway, entitlement(org_id, version=3, status="exceeded"))
    refused_before = decisions("refused")

    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        before = seconds_until(end)
        refused = [
            await http.post(f"{quota_gateway.url}/api/metered/x", headers=key, content=b"no")
            for _ in range(3)
        ]
        after = seconds_until(end)
        await wait_until_published(spool_of(quota_gateway))
        events = [e for e in await usage_events_after(js, start) if e.orgid == org_id]

    assert upstream.seen == []
    assert decisions("refused") - refused_before == 3
    answer = refused[0]
    assert answer.status_code == 429
    assert answer.headers["content-type"] == "application/problem+json"
    assert after <= int(answer.headers["retry-after"]) <= before
    assert "ratelimit" not in answer.headers  # the limiter was not asked
    warning, resets = without_reset(answer.headers["tollgate-quota-warning"])
    assert warning == '"quota-api_requests";status="exceeded";limit=100000;used=110001;reset=R'
    assert resets == [int(answer.headers["retry-after"])]
    assert answer.json() == {
        "type": "https://tollgate.dev/problems/quota-exceeded",
        "title": "Quota exceeded",
        "status": 429,
        "detail": "The api_requests quota of 100000 for this period is used up (110001 used); "
        f"it resets at {iso(end)}.",
        "instance": "/api/metered/x",
        "request_id": answer.headers["x-request-id"],
        "violated-policies": ["quota-api_requests"],
        "quota": {"meter": "api_requests", "limit": 100000, "used": 110001, "period_end": iso(end)},
    }
    assert [(e.data["status"], e.data["quota"]) for e in events] == [(429, "exceeded")] * 3

    # Removed: no longer enforced; the refused requests spent no rate-limit token.
    await publish(
        publisher,
        quota_gateway,
        entitlement(org_id, version=4, status="removed", limit=None, used=110001),
    )
    passed = await http.get(f"{quota_gateway.url}/api/metered/x", headers=key)
    assert passed.status_code == 200
    assert "tollgate-quota-warning" not in passed.headers
    assert '"key-hour";r=9;' in passed.headers["ratelimit"]
    assert upstream.seen == ["GET /x"]


async def test_grace_and_soft_pass_with_a_warning_and_flagged_usage(
    http, quota_gateway, counting_upstream, publisher, sign_up, nats_url
):
    account, unflagged = await sign_up(), await sign_up()
    org_id = account["organization"]["id"]
    key = bearer(account["api_key"]["key"])
    await publish(
        publisher,
        quota_gateway,
        entitlement(org_id, version=1, status="grace", used=100500),
        entitlement(
            org_id,
            version=1,
            status="exceeded",
            meter="search_calls",
            mode="soft",
            limit=2500.5,
            used=3000.25,
        ),
    )
    warned_before = decisions("warned")
    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        metered = await http.get(f"{quota_gateway.url}/api/metered/a", headers=key)
        search = await http.get(f"{quota_gateway.url}/api/search/b", headers=key)
        user = await http.get(
            f"{quota_gateway.url}/api/metered/c",
            headers=bearer(account["tokens"]["access_token"]),
        )
        clean = await http.get(
            f"{quota_gateway.url}/api/search/d", headers=bearer(unflagged["api_key"]["key"])
        )
        await wait_until_published(spool_of(quota_gateway))
        events = {e.id: e for e in await usage_events_after(js, start)}

    assert [r.status_code for r in (metered, search, user, clean)] == [200] * 4
    assert counting_upstream[0].seen == ["GET /a", "GET /b", "GET /c", "GET /d"]
    assert decisions("warned") - warned_before == 3
    grace = '"quota-api_requests";status="grace";limit=100000;used=100500;reset=R'
    assert without_reset(metered.headers["tollgate-quota-warning"])[0] == grace
    assert without_reset(user.headers["tollgate-quota-warning"])[0] == grace  # users too
    warning, resets = without_reset(search.headers["tollgate-quota-warning"])
    assert warning == (
        f'{grace}, "quota-search_calls";status="exceeded";limit=2500.5;used=3000.25;reset=R'
    )
    assert abs(resets[0] - seconds_until(next_month_start())) <= 1
    assert "tollgate-quota-warning" not in clean.headers
    flags = [
        events[r.headers["x-request-id"]].data["quota"] for r in (metered, search, user, clean)
    ]
    assert flags == ["grace", "exceeded", "grace", None]


async def test_tollgates_own_routes_are_never_refused(http, quota_gateway, publisher, sign_up):
    account = await sign_up()
    org_id = account["organization"]["id"]
    key = bearer(account["api_key"]["key"])
    await publish(publisher, quota_gateway, entitlement(org_id, version=1, status="exceeded"))
    assert (await http.get(f"{quota_gateway.url}/api/metered/x", headers=key)).status_code == 429
    own = [
        await http.get(f"{quota_gateway.url}/v1/organization", headers=key),
        await http.get(
            f"{quota_gateway.url}/v1/keys", headers=bearer(account["tokens"]["access_token"])
        ),
        await http.get(f"{quota_gateway.url}/v1/limits", headers=key),
    ]
    assert [answer.status_code for answer in own] == [200, 200, 200]
    assert all("tollgate-quota-warning" not in answer.headers for answer in own)


async def test_a_route_meter_is_enforced_on_its_route_only(
    http, quota_gateway, counting_upstream, publisher, sign_up
):
    account = await sign_up()
    key = bearer(account["api_key"]["key"])
    await publish(
        publisher,
        quota_gateway,
        entitlement(
            account["organization"]["id"],
            version=1,
            status="exceeded",
            meter="search_calls",
            limit=500,
            used=550,
        ),
    )
    refused = await http.get(f"{quota_gateway.url}/api/search/x", headers=key)
    assert refused.status_code == 429
    assert refused.json()["violated-policies"] == ["quota-search_calls"]
    assert refused.json()["quota"]["meter"] == "search_calls"
    other = await http.get(f"{quota_gateway.url}/api/metered/x", headers=key)
    assert other.status_code == 200 and "tollgate-quota-warning" not in other.headers
    assert counting_upstream[0].seen == ["GET /x"]


async def test_older_versions_are_ignored_and_duplicates_harmless(
    http, quota_gateway, publisher, sign_up
):
    account = await sign_up()
    org_id = account["organization"]["id"]
    url, key = f"{quota_gateway.url}/api/metered/x", bearer(account["api_key"]["key"])
    exceeded = entitlement(org_id, version=7, status="exceeded")
    await publish(publisher, quota_gateway, exceeded, exceeded)  # duplicated
    assert (await http.get(url, headers=key)).status_code == 429
    older = entitlement(org_id, version=6, status="within", used=10)
    await publish(publisher, quota_gateway, older)  # reordered: arrives after a newer one
    assert (await http.get(url, headers=key)).status_code == 429
    await publish(publisher, quota_gateway, entitlement(org_id, version=8, status="within"))
    assert (await http.get(url, headers=key)).status_code == 200
    await publish(publisher, quota_gateway, exceeded)  # a late copy of version 7
    assert (await http.get(url, headers=key)).status_code == 200


async def test_unreadable_events_are_counted_and_change_nothing(
    http, quota_gateway, publisher, sign_up
):
    account = await sign_up()
    org_id = account["organization"]["id"]
    invalid_before = REGISTRY.get_sample_value(
        "tollgate_gateway_quota_events_total", {"outcome": "invalid"}
    )
    exceeded = entitlement(org_id, version=2, status="exceeded")
    lifted_on_the_wrong_subject = new_event(
        service="metering",
        type_=UPDATED,
        data=entitlement(org_id, version=3, status="removed", limit=None),
    )
    await publisher.publish(UPDATED, b"not json")
    await publisher.publish(UPDATED, lifted_on_the_wrong_subject.to_json())
    await publisher.publish(
        UPDATED, new_event(service="metering", type_=UPDATED, data={}).to_json()
    )
    await publish(publisher, quota_gateway, exceeded)
    invalid_after = REGISTRY.get_sample_value(
        "tollgate_gateway_quota_events_total", {"outcome": "invalid"}
    )
    # Counted by every gateway of this test process that heard them.
    assert (invalid_after or 0) - (invalid_before or 0) >= 3
    states_held = feed_of(quota_gateway).states
    assert states_held.version_of(uuid.UUID(org_id), "api_requests") == exceeded["version"]
    answer = await http.get(
        f"{quota_gateway.url}/api/metered/x", headers=bearer(account["api_key"]["key"])
    )
    assert answer.status_code == 429  # the subscription lives on; version 3 was never taken


async def test_a_state_of_an_ended_period_is_ignored(http, quota_gateway, publisher, sign_up):
    account = await sign_up()
    ended = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await publish(
        publisher,
        quota_gateway,
        entitlement(account["organization"]["id"], version=1, status="exceeded", period_end=ended),
    )
    answer = await http.get(
        f"{quota_gateway.url}/api/metered/x", headers=bearer(account["api_key"]["key"])
    )
    assert answer.status_code == 200 and "tollgate-quota-warning" not in answer.headers


async def test_snapshot_at_start_enforces_before_any_event(
    http, metering, quota_settings, counting_upstream, sign_up
):
    stub, _ = metering
    account = await sign_up()
    stub.items = [
        {"organization_id": account["organization"]["id"], "meter": "api_requests"},  # skipped
        entitlement(account["organization"]["id"], version=2, status="exceeded"),
    ]
    async with serving(create_gateway(quota_settings())) as fresh:
        refused = await http.get(
            f"{fresh.url}/api/metered/x", headers=bearer(account["api_key"]["key"])
        )
        assert REGISTRY.get_sample_value("tollgate_gateway_quota_snapshot_loaded") == 1
    assert refused.status_code == 429
    assert counting_upstream[0].seen == []
    # Asked with the gateway's service identity, as the keys service is.
    assert stub.callers[0] == Identity(principal_type="service", principal_id="gateway")


async def test_metering_down_at_start_fails_open_then_enforces(
    http, metering, quota_settings, sign_up
):
    stub, _ = metering
    stub.status = 503
    account = await sign_up()
    url, key = None, bearer(account["api_key"]["key"])
    async with serving(create_gateway(quota_settings())) as fresh:
        url = f"{fresh.url}/api/metered/x"
        feed = feed_of(fresh)
        assert (await http.get(url, headers=key)).status_code == 200
        assert REGISTRY.get_sample_value("tollgate_gateway_quota_snapshot_loaded") == 0
        # One warning per outage, however many attempts fail.
        with structlog.testing.capture_logs() as logs:
            assert [await feed.load() for _ in range(3)] == [False] * 3
        assert not [log for log in logs if log["event"].startswith("entitlement snapshot")]

        stub.items = [entitlement(account["organization"]["id"], version=1, status="exceeded")]
        stub.status = 200
        with structlog.testing.capture_logs() as logs:
            await until(lambda: feed.loads >= 1, "the retry loop loaded the snapshot")
        assert any(log["event"] == "entitlement snapshot loaded again" for log in logs)
        enforced = await http.get(url, headers=key)
        assert enforced.status_code == 429, (stub.items, feed.states.flagged_count, feed.loads)
        assert REGISTRY.get_sample_value("tollgate_gateway_quota_snapshot_loaded") == 1


async def test_a_nats_reconnect_reloads_the_snapshot(
    http, metering, quota_settings, sign_up, tmp_path
):
    stub, _ = metering
    lifted, warned = await sign_up(), await sign_up()
    lifted_key, warned_key = bearer(lifted["api_key"]["key"]), bearer(warned["api_key"]["key"])
    stub.items = [entitlement(lifted["organization"]["id"], version=4, status="exceeded")]
    # This replica hears a NATS server of its own: no event reaches it, only the snapshot.
    isolated_nats = EmbeddedNats(tmp_path / "nats")
    isolated_nats.start()
    try:
        async with serving(create_gateway(quota_settings(nats_url=isolated_nats.url))) as alone:
            url = f"{alone.url}/api/metered/x"
            feed = feed_of(alone)
            assert feed.loads == 1
            assert (await http.get(url, headers=lifted_key)).status_code == 429
            assert (await http.get(url, headers=warned_key)).status_code == 200
            # While this replica is away from NATS, one quota is lifted (absent from the
            # snapshot: within) and another org reaches its grace.
            stub.items = [entitlement(warned["organization"]["id"], version=1, status="grace")]

            isolated_nats.stop()
            isolated_nats.start()  # same port: the client reconnects
            await until(lambda: feed.loads >= 2, "a snapshot loaded after the reconnect")
            assert (await http.get(url, headers=lifted_key)).status_code == 200
            answer = await http.get(url, headers=warned_key)
            assert answer.status_code == 200
            assert 'status="grace"' in answer.headers["tollgate-quota-warning"]
    finally:
        isolated_nats.stop()
