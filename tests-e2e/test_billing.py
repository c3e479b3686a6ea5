"""Billing through the whole stack: a signup becomes a billing customer on the free plan, the
catalog is readable by members and administered only by the platform operator."""

import time

import httpx

from .accounts import sign_up


def test_a_signup_becomes_a_customer_on_the_free_plan(stack):
    account = sign_up(stack.gateway_url, "Billed")
    key, admin = account.key, account.admin

    deadline = time.monotonic() + 30  # made from the keys service's event; a deadline only
    while (
        customer := httpx.get(f"{stack.gateway_url}/v1/billing/customer", headers=key)
    ).status_code == 404:
        assert time.monotonic() < deadline, customer.text
        time.sleep(0.2)
    assert customer.status_code == 200, customer.text
    assert customer.json()["organization_id"] == account.org_id
    assert customer.json()["plan"]["key"] == "free"

    plans = httpx.get(f"{stack.gateway_url}/v1/billing/plans", headers=key)
    assert plans.status_code == 200, plans.text
    assert {"free", "pro", "enterprise"} <= {plan["key"] for plan in plans.json()}
    # The catalog is the operator's: an organisation's own admin is refused by the gateway.
    refused = httpx.get(f"{stack.gateway_url}/v1/billing/admin/plans", headers=admin)
    assert refused.status_code == 403, refused.text


def test_an_upgrade_reaches_the_gateway_and_metering_without_a_call(stack):
    """signup → POST /v1/billing/subscription/change to pro → billing publishes the new
    subscription, keys takes its tier and announces the org, the gateway evicts the org's keys
    and metering picks the plan's quotas: all through events."""
    account = sign_up(stack.gateway_url, "Upgrader")
    key, admin = account.key, account.admin

    # Warm the gateway's cache with the free plan: the change must evict it.
    free = httpx.get(f"{stack.gateway_url}/v1/limits", headers=key)
    assert free.json()["plan"] == "free", free.text
    assert '"org-hour";q=1000;' in free.headers["RateLimit-Policy"]

    deadline = time.monotonic() + 30  # the subscription is made from keys' event
    while (
        subscription := httpx.get(f"{stack.gateway_url}/v1/billing/subscription", headers=key)
    ).status_code == 404:
        assert time.monotonic() < deadline, subscription.text
        time.sleep(0.2)
    assert subscription.json()["plan"] == "free"

    # A key with only read and write may not change the subscription; the org admin may.
    refused = httpx.post(
        f"{stack.gateway_url}/v1/billing/subscription/change",
        json={"plan": "pro", "at": "now"},
        headers=key,
    )
    assert refused.status_code == 403, refused.text
    changed = httpx.post(
        f"{stack.gateway_url}/v1/billing/subscription/change",
        json={"plan": "pro", "at": "now"},
        headers={**admin, "If-Match": subscription.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"2"'
    stale = httpx.post(
        f"{stack.gateway_url}/v1/billing/subscription/change",
        json={"plan": "enterprise", "at": "now"},
        headers={**admin, "If-Match": subscription.headers["ETag"]},
    )
    assert stale.status_code == 412, stale.text
    assert (changed.json()["plan"], changed.json()["status"]) == ("pro", "trialing")

    deadline = time.monotonic() + 15
    while (limits := httpx.get(f"{stack.gateway_url}/v1/limits", headers=key)).json()[
        "plan"
    ] != "pro":
        assert time.monotonic() < deadline, limits.text
        time.sleep(0.1)
    assert '"org-hour";q=10000;' in limits.headers["RateLimit-Policy"]
    served = httpx.get(f"{stack.gateway_url}/api/demo/hello", headers=key)
    assert served.status_code == 200, served.text
    assert '"org-hour";q=10000;' in served.headers["RateLimit-Policy"]

    while (
        entitlements := httpx.get(f"{stack.gateway_url}/v1/entitlements", headers=key)
    ).json().get("plan") != "pro":
        assert time.monotonic() < deadline, entitlements.text
        time.sleep(0.1)


def test_the_upcoming_invoice_counts_the_calls_metering_measured(stack):
    """Billing reads usage from metering with its own key (ADR 0018): calls to the product API
    through the gateway show up as the metered line of the upcoming invoice."""
    account = sign_up(stack.gateway_url, "Invoiced")
    key, admin = account.key, account.admin
    deadline = time.monotonic() + 30
    while (
        httpx.get(f"{stack.gateway_url}/v1/billing/subscription", headers=key)
    ).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    changed = httpx.post(
        f"{stack.gateway_url}/v1/billing/subscription/change",
        json={"plan": "pro", "at": "now"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    for _ in range(3):
        hello = httpx.get(f"{stack.gateway_url}/api/demo/hello", headers=key)
        assert hello.status_code == 200, hello.text

    deadline = time.monotonic() + 30  # usage travels gateway → NATS → metering
    while True:
        upcoming = httpx.get(f"{stack.gateway_url}/v1/billing/invoices/upcoming", headers=key)
        assert upcoming.status_code == 200, upcoming.text
        [metered] = [line for line in upcoming.json()["lines"] if line["kind"] == "metered"]
        if metered["quantity"] == "3" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (metered["meter"], metered["quantity"], metered["amount"]) == ("api_requests", "3", 0)
    assert upcoming.json()["plan"] == "pro"
    invoices = httpx.get(f"{stack.gateway_url}/v1/billing/invoices", headers=key)
    assert invoices.status_code == 200, invoices.text
    assert invoices.json()["items"] == []  # the period has not ended
