"""Billing through the whole stack: a signup becomes a billing customer on the free plan, the
catalog is readable by members and administered only by the platform operator."""

import time
import uuid

import httpx

PASSWORD = "a long enough passphrase"


def test_a_signup_becomes_a_customer_on_the_free_plan(stack):
    signup = httpx.post(
        f"{stack.gateway_url}/v1/signup",
        json={
            "organization_name": "Billed",
            "email": f"billed-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
        },
    )
    assert signup.status_code == 201, signup.text
    account = signup.json()
    key = {"Authorization": f"Bearer {account['api_key']['key']}"}
    admin = {"Authorization": f"Bearer {account['tokens']['access_token']}"}

    deadline = time.monotonic() + 30  # made from the keys service's event; a deadline only
    while (
        customer := httpx.get(f"{stack.gateway_url}/v1/billing/customer", headers=key)
    ).status_code == 404:
        assert time.monotonic() < deadline, customer.text
        time.sleep(0.2)
    assert customer.status_code == 200, customer.text
    assert customer.json()["organization_id"] == account["organization"]["id"]
    assert customer.json()["plan"]["key"] == "free"

    plans = httpx.get(f"{stack.gateway_url}/v1/billing/plans", headers=key)
    assert plans.status_code == 200, plans.text
    assert {"free", "pro", "enterprise"} <= {plan["key"] for plan in plans.json()}
    # The catalog is the operator's: an organisation's own admin is refused by the gateway.
    refused = httpx.get(f"{stack.gateway_url}/v1/billing/admin/plans", headers=admin)
    assert refused.status_code == 403, refused.text
