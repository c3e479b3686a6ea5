"""GET /v1/analytics/...: per-organisation request analytics from the gateway's usage events, and
the platform view across organisations."""

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tollgate_metering.analytics.histogram import RELATIVE_ERROR
from tollgate_metering.gateway_usage.handlers import USAGE_RECORDED, record_gateway_usage_batch
from tollgate_shared.events.envelope import CloudEvent

from .conftest import assert_problem, database_state, event

HOUR, DAY, THIRTY_DAYS = 3600, 86400, 30 * 86400
NO_PLAN = object()  # an event recorded before the gateway added the plan field


@dataclass
class Call:
    """One request as the gateway reports it; `ago` is how long before now it arrived."""

    ago: timedelta
    status: int = 200
    latency_ms: float = 10.0
    key_id: str | None = None  # None: a signed-in user's request
    route: str = "demo"
    plan: Any = "pro"
    request_bytes: int = 0
    response_bytes: int = 100
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def cloud_event(self, org_id: uuid.UUID, now: datetime) -> CloudEvent:
        """The event as the gateway publishes it (docs/events.md)."""
        data: dict[str, Any] = {
            "request_id": self.id,
            "organization_id": str(org_id),
            "principal_type": "key" if self.key_id else "user",
            "key_id": self.key_id,
            "user_id": None if self.key_id else str(uuid.uuid4()),
            "route": self.route,
            "meter": "api_requests",
            "plan": self.plan,
            "method": "GET",
            "status": self.status,
            "latency_ms": self.latency_ms,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "timestamp": (now - self.ago).isoformat(),
        }
        if self.plan is NO_PLAN:
            del data["plan"]
        return CloudEvent(
            id=self.id,
            source="/tollgate/gateway",
            type=USAGE_RECORDED,
            orgid=str(org_id),
            data=data,
        )


async def record(db, org, calls: list[Call]) -> None:
    """Store the calls through the usage consumer's own batch handler."""
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await record_gateway_usage_batch(
            session, [call.cloud_event(org.org_id, now) for call in calls]
        )


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def expected(calls: list[Call], period_seconds: int) -> dict[str, Any]:
    """The figures computed here, in Python, from the calls themselves."""
    latencies = [call.latency_ms for call in calls]
    errors: dict[int, int] = {}
    for call in calls:
        if call.status >= 400:
            errors[call.status] = errors.get(call.status, 0) + 1
    return {
        "requests": len(calls),
        "success_rate": (
            sum(200 <= call.status < 400 for call in calls) / len(calls) if calls else None
        ),
        "latency_ms": {
            name: percentile_cont(latencies, fraction) if calls else None
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "requests_per_second": len(calls) / period_seconds,
        "request_bytes": sum(call.request_bytes for call in calls),
        "response_bytes": sum(call.response_bytes for call in calls),
        "errors_by_status": [
            {"status": status, "requests": count} for status, count in sorted(errors.items())
        ],
    }


def figures(body: dict[str, Any]) -> dict[str, Any]:
    """The figures of an answer (a summary, a group or an organisation)."""
    return {name: body[name] for name in expected([], 1)}


def approx_figures(values: dict[str, Any], latency_rel: float = 1e-12) -> dict[str, Any]:
    """Expected figures, floats compared to within rounding of the last bits; latencies within
    latency_rel (RELATIVE_ERROR: the estimates of a day and 30 days, from the rollup)."""
    values = dict(values)
    values["latency_ms"] = {
        name: value if value is None else pytest.approx(value, rel=latency_rel)
        for name, value in values["latency_ms"].items()
    }
    values["requests_per_second"] = pytest.approx(values["requests_per_second"], rel=1e-12)
    return values


async def get(client, path: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


KEY_A, KEY_B = str(uuid.uuid4()), str(uuid.uuid4())
# Latencies with no pattern, so every percentile falls between two different values.
LATENCIES = [round((number * 37 % 101) * 1.731 + 0.5, 3) for number in range(23)]
STATUSES = [200] * 10 + [201, 204, 301, 304, 400, 404, 404, 429, 429, 429, 500, 502, 503]


def last_hour_calls() -> list[Call]:
    return [
        Call(
            ago=timedelta(minutes=1 + number),
            status=status,
            latency_ms=latency,
            key_id=(KEY_A, KEY_B, None)[number % 3],
            route=("search", "search", "upload")[number % 3],
            plan=("pro", "pro", "free", None, NO_PLAN)[number % 5],
            request_bytes=number * 10,
            response_bytes=1000 + number,
        )
        for number, (status, latency) in enumerate(zip(STATUSES, LATENCIES, strict=True))
    ]


EARLIER_TODAY = [
    Call(ago=timedelta(hours=2), status=200, latency_ms=900.0, key_id=KEY_A),
    Call(ago=timedelta(hours=5), status=500, latency_ms=1200.5, key_id=KEY_B, route="upload"),
    Call(ago=timedelta(hours=23), status=429, latency_ms=0.25, key_id=KEY_A),
]
THIS_MONTH = [
    Call(ago=timedelta(days=3), status=200, latency_ms=40.0, key_id=KEY_A),
    Call(ago=timedelta(days=29, hours=23), status=404, latency_ms=5000.0, key_id=KEY_A),
]
TOO_OLD = [Call(ago=timedelta(days=30, hours=1), status=500, latency_ms=99999.0, key_id=KEY_A)]


@pytest.fixture
async def traffic(db, acme, globex) -> list[Call]:
    """acme's requests at known times; globex's at the same times, with acme's key ids too."""
    calls = last_hour_calls() + EARLIER_TODAY + THIS_MONTH + TOO_OLD
    await record(db, acme, calls)
    await record(
        db,
        globex,
        [
            Call(ago=timedelta(minutes=5), status=503, latency_ms=7.0, key_id=KEY_A),
            Call(ago=timedelta(minutes=7), key_id=str(uuid.uuid4()), route="search"),
            Call(ago=timedelta(days=2), status=418, latency_ms=3.0, key_id=KEY_B),
        ],
    )
    return calls


async def test_the_summary_of_each_period(client, acme, traffic):
    hour, day = last_hour_calls(), last_hour_calls() + EARLIER_TODAY
    month = day + THIS_MONTH
    for period, calls, seconds, rel in (
        ("hour", hour, HOUR, 1e-12),
        ("day", day, DAY, RELATIVE_ERROR),
        ("30d", month, THIRTY_DAYS, RELATIVE_ERROR),
    ):
        before = datetime.now(UTC)
        body = await get(client, "/v1/analytics/summary", acme.user(), period=period)
        assert figures(body) == approx_figures(expected(calls, seconds), rel), period
        assert (body["period"], body["key_id"], body["route"]) == (period, None, None)
        time_from, time_to = (datetime.fromisoformat(body[name]) for name in ("from", "to"))
        assert before <= time_to <= datetime.now(UTC)
        assert (time_to - time_from).total_seconds() == seconds
    # Written out once, to be sure the Python reference above says what the docs say.
    hour_body = await get(client, "/v1/analytics/summary", acme.user(), period="hour")
    assert hour_body["requests"] == 23
    assert hour_body["success_rate"] == pytest.approx(14 / 23)
    assert hour_body["requests_per_second"] == pytest.approx(23 / 3600)
    assert hour_body["errors_by_status"] == [
        {"status": 400, "requests": 1},
        {"status": 404, "requests": 2},
        {"status": 429, "requests": 3},
        {"status": 500, "requests": 1},
        {"status": 502, "requests": 1},
        {"status": 503, "requests": 1},
    ]
    # 23 values: p50 is exactly the 12th smallest, p95 and p99 interpolate.
    assert hour_body["latency_ms"]["p50"] == sorted(LATENCIES)[11]
    assert sorted(LATENCIES)[20] < hour_body["latency_ms"]["p95"] < sorted(LATENCIES)[21]


async def test_key_and_route_filters(client, acme, traffic):
    hour = last_hour_calls()
    for params, kept in (
        ({"key_id": KEY_A}, [call for call in hour if call.key_id == KEY_A]),
        ({"route": "upload"}, [call for call in hour if call.route == "upload"]),
        ({"key_id": KEY_A, "route": "upload"}, []),  # key A only calls search
        ({"key_id": KEY_B, "route": "search"}, [call for call in hour if call.key_id == KEY_B]),
        ({"route": "nowhere"}, []),
    ):
        body = await get(client, "/v1/analytics/summary", acme.user(), period="hour", **params)
        assert figures(body) == approx_figures(expected(kept, HOUR)), params
        assert (body["key_id"], body["route"]) == (params.get("key_id"), params.get("route"))


async def test_breakdowns(client, acme, traffic):
    day = last_hour_calls() + EARLIER_TODAY
    groupings = {
        "key": lambda call: call.key_id,
        "route": lambda call: call.route,
        "status": lambda call: str(call.status),
        "plan": lambda call: "unknown" if call.plan in (None, NO_PLAN) else call.plan,
    }
    for by, group_of in groupings.items():
        body = await get(client, "/v1/analytics/breakdown", acme.user(), period="day", by=by)
        groups: dict[Any, list[Call]] = {}
        for call in day:
            groups.setdefault(group_of(call), []).append(call)
        assert body["by"] == by
        assert body["total_groups"] == len(groups)
        order = sorted(groups, key=lambda name: (-len(groups[name]), name is None, name or ""))
        assert [row["group"] for row in body["data"]] == order, by
        for row in body["data"]:
            assert figures(row) == approx_figures(
                expected(groups[row["group"]], DAY), RELATIVE_ERROR
            ), (by, row)
    plans = await get(client, "/v1/analytics/breakdown", acme.user(), period="hour", by="plan")
    assert {row["group"]: row["requests"] for row in plans["data"]} == {
        "pro": 10,
        "free": 5,
        "unknown": 8,  # plan null, or no plan field at all
    }


async def test_a_breakdown_takes_the_filters_too(client, acme, traffic):
    body = await get(
        client, "/v1/analytics/breakdown", acme.user(), period="day", by="status", key_id=KEY_B
    )
    of_b = [call for call in last_hour_calls() + EARLIER_TODAY if call.key_id == KEY_B]
    assert body["key_id"] == KEY_B
    assert {row["group"]: row["requests"] for row in body["data"]} == {
        str(status): sum(call.status == status for call in of_b)
        for status in {call.status for call in of_b}
    }


async def test_a_breakdown_keeps_the_100_busiest_groups(client, acme, db):
    # 105 routes: route-000 has 6 requests, route-001 to -004 two each, the rest one each.
    calls = [Call(ago=timedelta(minutes=2), route=f"route-{n:03}") for n in range(105)]
    calls += [Call(ago=timedelta(minutes=3), route="route-000") for _ in range(5)]
    calls += [Call(ago=timedelta(minutes=4), route=f"route-{n:03}") for n in range(1, 5)]
    await record(db, acme, calls)
    body = await get(client, "/v1/analytics/breakdown", acme.user(), period="hour", by="route")
    assert body["total_groups"] == 105
    names = [row["group"] for row in body["data"]]
    assert names[:5] == ["route-000", "route-001", "route-002", "route-003", "route-004"]
    assert [row["requests"] for row in body["data"][:6]] == [6, 2, 2, 2, 2, 1]
    # Ties by name: the last five of the one-request routes are left out.
    assert names[5:] == [f"route-{n:03}" for n in range(5, 100)]


async def test_other_organisations_are_never_counted(client, acme, globex, traffic):
    acme_hour = await get(client, "/v1/analytics/summary", acme.user(), period="hour")
    assert acme_hour["requests"] == 23
    globex_hour = await get(client, "/v1/analytics/summary", globex.user(), period="hour")
    assert (globex_hour["requests"], globex_hour["errors_by_status"]) == (
        2,
        [{"status": 503, "requests": 1}],
    )
    # globex has no calls of acme's key B in the last hour, only one two days ago.
    of_b = await get(client, "/v1/analytics/summary", globex.user(), period="hour", key_id=KEY_B)
    assert figures(of_b) == approx_figures(expected([], HOUR))
    assert of_b["success_rate"] is None and of_b["latency_ms"]["p99"] is None
    # A key id of another organisation gives nothing of it.
    foreign = await get(
        client, "/v1/analytics/summary", globex.user(), period="30d", key_id=str(uuid.uuid4())
    )
    assert foreign["requests"] == 0
    by_key = await get(client, "/v1/analytics/breakdown", globex.user(), period="30d", by="key")
    assert KEY_A in {row["group"] for row in by_key["data"]}
    assert sum(row["requests"] for row in by_key["data"]) == 3


async def test_api_sent_api_requests_events_are_refused_and_never_gateway_traffic(client, acme, db):
    """Only the gateway records api_requests: the API refuses them, and analytics reads only
    what the gateway recorded anyway, so such data could neither count nor break the casts."""
    await record(db, acme, [Call(ago=timedelta(minutes=1), status=201, latency_ms=4.0)])
    sent = await client.post(
        "/v1/events",
        json=[
            event(type="api_requests", data={"status": "teapot", "latency_ms": "slow"}),
            event(type="api_requests", data={"status": 500, "latency_ms": 9000}),
        ],
        headers=acme.admin,
    )
    assert sent.status_code == 422, sent.text
    assert {r["errors"][0]["type"] for r in sent.json()["rejected"]} == {"built_in_meter"}
    body = await get(client, "/v1/analytics/summary", acme.user(), period="hour")
    assert (body["requests"], body["errors_by_status"]) == (1, [])
    assert body["latency_ms"]["p99"] == 4.0


async def test_an_organisation_without_requests(client, acme):
    body = await get(client, "/v1/analytics/summary", acme.key("read"), period="day")
    assert figures(body) == approx_figures(expected([], DAY))
    breakdown = await get(client, "/v1/analytics/breakdown", acme.user(), period="day", by="key")
    assert (breakdown["total_groups"], breakdown["data"]) == (0, [])


async def test_who_may_read_an_organisations_analytics(client, acme, traffic):
    for headers in (acme.user(), acme.user("billing_admin"), acme.key("read"), acme.key("admin")):
        body = await get(client, "/v1/analytics/summary", headers, period="hour")
        assert body["requests"] == 23
    for path in ("/v1/analytics/summary", "/v1/analytics/breakdown"):
        refused = await client.get(
            path, params={"period": "hour", "by": "key"}, headers=acme.key("write")
        )
        assert_problem(refused, 403, "forbidden")
    no_identity = await client.get("/v1/analytics/summary", params={"period": "hour"})
    assert_problem(no_identity, 401, "unauthorized")


async def test_the_platform_view_across_organisations(client, acme, globex, traffic, mint_identity):
    super_admin = mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))
    body = await get(client, "/v1/admin/analytics/organizations", super_admin, period="day")
    rows = {row["organization_id"]: row for row in body["data"]}
    acme_day = last_hour_calls() + EARLIER_TODAY
    assert figures(rows[str(acme.org_id)]) == approx_figures(
        expected(acme_day, DAY), RELATIVE_ERROR
    )
    assert rows[str(globex.org_id)]["requests"] == 2
    # Busiest first; other suites' organisations may be there too (a shared NATS).
    requests = [row["requests"] for row in body["data"]]
    assert requests == sorted(requests, reverse=True)
    assert body["total_organizations"] >= 2 and len(body["data"]) <= 100
    month = await get(client, "/v1/admin/analytics/organizations", super_admin, period="30d")
    assert {row["organization_id"]: row["requests"] for row in month["data"]}[
        str(globex.org_id)
    ] == 3


async def test_the_platform_view_needs_the_super_admin_role(client, acme, traffic):
    path = "/v1/admin/analytics/organizations"
    for headers in (acme.admin, acme.user(), acme.key("admin"), acme.key("read")):
        refused = await client.get(path, params={"period": "day"}, headers=headers)
        body = assert_problem(refused, 403, "forbidden")
        assert "super_admin" in body["detail"]
    assert_problem(await client.get(path, params={"period": "day"}), 401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/analytics/summary", {}),  # period is required
        ("/v1/analytics/summary", {"period": "week"}),
        ("/v1/analytics/summary", {"period": "HOUR"}),
        ("/v1/analytics/summary", {"period": "hour", "key_id": "not-a-uuid"}),
        ("/v1/analytics/summary", {"period": "hour", "route": ""}),
        ("/v1/analytics/summary", {"period": "hour", "route": "r" * 64}),
        ("/v1/analytics/breakdown", {"period": "hour"}),  # by is required
        ("/v1/analytics/breakdown", {"period": "hour", "by": "colour"}),
        ("/v1/analytics/breakdown", {"period": "7d", "by": "key"}),
        ("/v1/admin/analytics/organizations", {"period": "year"}),
    ],
)
async def test_bad_input_is_a_clear_422(client, acme, db, mint_identity, path, params):
    super_admin = mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))
    headers = super_admin if "admin" in path else acme.user()
    before = await database_state(db)
    response = await client.get(path, params=params, headers=headers)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"][0] == "query"
    assert await database_state(db) == before
