"""Quotas through the whole stack: the operator gives an organisation a small hard quota, calls
through the gateway use it up, metering publishes the state, and every further call to the
product API is refused with 429 quota-exceeded, while Tollgate's own endpoints stay open. Lifting
the quota lets calls through again."""

import time

import httpx

from .accounts import sign_up

DEADLINE_SECONDS = 30  # states reach the gateway within seconds; a deadline, not a measure


def operator_headers(stack) -> dict[str, str]:
    login = httpx.post(
        f"{stack.gateway_url}/v1/auth/login",
        json={"email": stack.superadmin_email, "password": stack.superadmin_password},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_hard_quota_refuses_the_product_api_once_used_up(stack):
    account = sign_up(stack.gateway_url, "Quota")
    org_id = account.org_id
    key = account.key
    operator = operator_headers(stack)
    quota_url = f"{stack.gateway_url}/v1/admin/entitlements/{org_id}/api_requests"
    set_quota = httpx.put(quota_url, json={"limit": 5, "mode": "hard"}, headers=operator)
    assert set_quota.status_code == 200, set_quota.text

    served, deadline = 0, time.monotonic() + DEADLINE_SECONDS
    while True:
        call = httpx.get(f"{stack.gateway_url}/api/demo/hello", headers=key)
        if call.status_code == 429 and call.json()["type"].endswith("/quota-exceeded"):
            break
        assert call.status_code == 200, call.text
        served += 1
        assert time.monotonic() < deadline, f"{served} calls served, never refused"
        time.sleep(0.05)
    assert served >= 5  # the quota is reached before it is enforced, never sooner
    problem = call.json()
    assert problem["violated-policies"] == ["quota-api_requests"]
    assert int(call.headers["retry-after"]) > 0

    # Tollgate's own endpoints stay open: the customer can see why. Every served call counts
    # (its usage event may still be on its way), the refused ones and these reads never do.
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        entitlements = httpx.get(f"{stack.gateway_url}/v1/entitlements", headers=key)
        assert entitlements.status_code == 200
        [quota] = entitlements.json()["data"]
        if quota["used"] == served or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert quota["used"] == served
    assert (quota["limit"], quota["status"], quota["remaining"]) == (5, "exceeded", 0)

    lifted = httpx.put(quota_url, json={"limit": None}, headers=operator)
    assert lifted.status_code == 200, lifted.text
    deadline = time.monotonic() + DEADLINE_SECONDS
    while httpx.get(f"{stack.gateway_url}/api/demo/hello", headers=key).status_code != 200:
        assert time.monotonic() < deadline, "the lifted quota never reached the gateway"
        time.sleep(0.1)
