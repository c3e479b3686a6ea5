"""Every request that passed authentication produces exactly one usage event with its facts;
requests refused before or at authentication, and public routes, produce none.

Refusals after authentication (403 scope, 401 "this route needs an API key", 502 upstream down)
are usage too, with their status: the caller was identified and served an answer.
"""

import time
from datetime import UTC, datetime

from tollgate_shared import api_key_format

from .conftest import bearer
from .usage_stream import (
    jetstream,
    last_sequence,
    spool_of,
    usage_events_after,
    wait_until_published,
)

JSON = {"Content-Type": "application/json"}


async def test_each_authenticated_request_has_one_event_with_its_facts(
    http, gateway, sign_up, nats_url
):
    account = await sign_up()
    org_id = account["organization"]["id"]
    key, key_id = account["api_key"]["key"], account["api_key"]["id"]
    user_token = account["tokens"]["access_token"]
    user_id = account["user"]["id"]
    calls = [
        # (method, path, credential, body, expected status, route, meter, principal)
        ("GET", "/api/demo/echo/x?q=1", key, b"", 200, "demo", "api_requests", "key"),
        ("POST", "/api/demo/echo", key, b"z" * 1000, 200, "demo", "api_requests", "key"),
        ("PUT", "/api/demo/nowhere", key, b"{}", 404, "demo", "api_requests", "key"),  # upstream
        ("HEAD", "/api/demo/hello", key, b"", 405, "demo", "api_requests", "key"),  # no body
        ("GET", "/api/demo/admin/x", key, b"", 403, "demo-admin", "api_requests", "key"),
        ("GET", "/api/down/x", key, b"", 502, "down", "api_requests", "key"),
        ("GET", "/api/readonly/x", user_token, b"", 401, "readonly", "api_requests", "user"),
        ("GET", "/v1/keys", user_token, b"", 200, "keys", None, "user"),
        ("GET", "/v1/organization", key, b"", 200, "organization", None, "key"),
    ]
    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        sent = []
        for method, path, credential, body, status, *_ in calls:
            before_wall, before = datetime.now(UTC), time.perf_counter()
            response = await http.request(
                method, f"{gateway.url}{path}", headers=bearer(credential), content=body
            )
            elapsed_ms = (time.perf_counter() - before) * 1000
            assert response.status_code == status, (path, response.text)
            sent.append((response, before_wall, elapsed_ms))
        await wait_until_published(spool_of(gateway))
        events = [event for event in await usage_events_after(js, start) if event.orgid == org_id]

    assert len(events) == len(calls)
    assert [event.id for event in events] == [r.headers["x-request-id"] for r, _, _ in sent]
    for event, call, (response, before_wall, elapsed_ms) in zip(events, calls, sent, strict=True):
        method, _, _, body, status, route, meter, principal = call
        data = event.data
        assert (event.source, event.specversion) == ("/tollgate/gateway", "1.0")
        assert data["request_id"] == event.id
        assert data["organization_id"] == org_id
        assert (data["route"], data["meter"], data["method"]) == (route, meter, method)
        assert data["status"] == status
        assert data["principal_type"] == principal
        assert data["plan"] == "free"  # the org's tier, for analytics by plan
        if principal == "key":
            assert (data["key_id"], data["user_id"]) == (key_id, None)
        else:
            assert (data["key_id"], data["user_id"]) == (None, user_id)
        assert data["request_bytes"] == len(body)
        assert data["response_bytes"] == len(response.content)
        # Measured inside the client's own round trip: an ordering check, not a speed target.
        assert 0 < data["latency_ms"] <= elapsed_ms
        received_at = datetime.fromisoformat(data["timestamp"])
        assert before_wall <= received_at <= event.time <= datetime.now(UTC)


async def test_no_event_for_requests_refused_before_or_at_authentication(
    http, gateway, sign_up, nats_url
):
    account = await sign_up()
    key = bearer(account["api_key"]["key"])
    login = b'{"email": "nobody@example.com", "password": "wrong password!"}'
    attempts = [
        # (method, path, headers, body, status)
        ("POST", "/v1/auth/login", {**key, **JSON}, login, 401),  # public: credential not read
        ("GET", "/api/demo/hello", {}, b"", 401),  # no credential
        ("GET", "/api/demo/hello", bearer("tg_live_short"), b"", 401),  # malformed key
        ("GET", "/api/demo/hello", bearer(api_key_format.generate_key()), b"", 401),  # unknown
        ("GET", "/api/demo/hello", bearer("not.a.jwt"), b"", 401),  # bad user token
        ("GET", "/api/demo/hello", {"Authorization": "Basic abc"}, b"", 401),  # wrong scheme
        ("GET", "/nowhere", key, b"", 404),  # no route
        ("POST", "/api/readonly/x", key, b"", 405),  # method checked before the credential
        ("GET", "/api/demo//x", key, b"", 400),  # bad path
        ("POST", "/api/demo/echo", key, b"x" * 70_000, 413),  # declared size, before the key
        ("GET", "/api/demo/hello", {**key, "X-Big": "a" * 40_000}, b"", 431),
        ("GET", "/healthz", key, b"", 200),  # the gateway's own endpoints
        ("GET", "/docs", key, b"", 200),
    ]
    async with jetstream(nats_url) as js:
        start = await last_sequence(js)
        refused_ids = set()
        for method, path, headers, body, status in attempts:
            response = await http.request(
                method, f"{gateway.url}{path}", headers=headers, content=body
            )
            assert response.status_code == status, (path, response.text)
            refused_ids.add(response.headers["x-request-id"])
        # One authenticated request afterwards: its event shows the others had their chance.
        marker = await http.get(f"{gateway.url}/api/demo/hello", headers=key)
        assert marker.status_code == 200
        await wait_until_published(spool_of(gateway))
        events = await usage_events_after(js, start)

    ids = [event.id for event in events]
    assert marker.headers["x-request-id"] in ids
    assert refused_ids.isdisjoint(ids)
    org_events = [event for event in events if event.orgid == account["organization"]["id"]]
    assert [event.id for event in org_events] == [marker.headers["x-request-id"]]
