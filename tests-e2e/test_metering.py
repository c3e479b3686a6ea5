"""Metering through the whole stack: a call through the gateway becomes one stored `api_requests`
event, and an operator's service reports its own usage with an API key, once per event id."""

import time
from datetime import UTC, datetime

import httpx

from .accounts import sign_up


def test_a_gateway_call_is_stored_once_as_api_requests(stack):
    account = sign_up(stack.gateway_url, "Metered")
    key = account.key
    call = httpx.get(f"{stack.gateway_url}/api/demo/hello", headers=key)
    assert call.status_code == 200
    request_id = call.headers["x-request-id"]

    deadline = time.monotonic() + 20  # consumed within moments; a deadline, not a measure
    while True:
        listed = httpx.get(
            f"{stack.gateway_url}/v1/events", params={"type": "api_requests"}, headers=key
        )
        assert listed.status_code == 200, listed.text
        stored = [event for event in listed.json()["items"] if event["id"] == request_id]
        if stored:
            break
        assert time.monotonic() < deadline, "the gateway's usage event never reached metering"
        time.sleep(0.2)
    [event] = stored
    assert event["subject"] == account.org_id
    assert event["data"]["route"] == "demo"


def test_custom_usage_is_counted_once_per_event_id(stack):
    account = sign_up(stack.gateway_url, "Metered")
    admin = account.admin
    meter = httpx.post(
        f"{stack.gateway_url}/v1/meters",
        json={
            "key": "llm_tokens",
            "name": "LLM tokens",
            "aggregation": "SUM",
            "value_property": "tokens",
        },
        headers=admin,
    )
    assert meter.status_code == 201, meter.text

    key = account.key  # read + write scopes
    event = {
        "id": "completion-1",
        "type": "llm_tokens",
        "subject": "customer-42",
        "time": datetime.now(UTC).isoformat(),
        "data": {"tokens": 1250, "model": "small"},
    }
    first = httpx.post(f"{stack.gateway_url}/v1/events", json=[event], headers=key)
    again = httpx.post(f"{stack.gateway_url}/v1/events", json=[event], headers=key)
    assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
    assert (first.json()["inserted"], first.json()["duplicates"]) == (1, 0)
    assert (again.json()["inserted"], again.json()["duplicates"]) == (0, 1)

    listed = httpx.get(
        f"{stack.gateway_url}/v1/events", params={"type": "llm_tokens"}, headers=key
    ).json()
    assert [(e["id"], e["data"]["tokens"]) for e in listed["items"]] == [("completion-1", 1250)]
