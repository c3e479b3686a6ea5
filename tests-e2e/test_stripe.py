"""Billing with Stripe on, through the whole stack: localstripe (with the billing tests' front,
services/billing/tests/localstripe_front.py) stands in for Stripe and sends its signed webhooks
to the gateway's public route. Only for tests: `make dev` never starts it."""

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tollgate_local.stack import Ports, Stack, StackInfo
from tollgate_shared.embedded import free_port

from .accounts import sign_up
from .conftest import REPOSITORY

FRONT = REPOSITORY / "services" / "billing" / "tests" / "localstripe_front.py"
GOOD_CARD = "4242424242424242"
# A plan billed by usage only (25 cents a call), sold monthly and yearly: switching its interval
# starts a period on it, canceling ends that period, so a test can have a whole one invoiced.
CATALOG = [
    {"key": "free", "name": "Free"},
    {
        "key": "payg",
        "name": "Pay as you go",
        "monthly_price": "0",
        "yearly_price": "0",
        "rate_limit_tier": "pro",
        "metered_charges": {
            "api_requests": {"pricing": {"model": "per_unit", "unit_price": "0.25"}}
        },
    },
]


@dataclass(frozen=True)
class StripeStack:
    info: StackInfo
    stripe_url: str
    secret_key: str

    def stripe(self, path: str, **params: Any) -> Any:
        """GET from the fake Stripe account, as the operator's dashboard would."""
        response = httpx.get(
            f"{self.stripe_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.secret_key}"},
        )
        response.raise_for_status()
        return response.json()

    def deliveries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(
            f"{self.stripe_url}/_config/front/webhook-deliveries"
        ).json()
        return result


@pytest.fixture(scope="module")
def stripe_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeStack]:
    state = tmp_path_factory.mktemp("stripe-stack")
    port = free_port()
    stripe_url = f"http://127.0.0.1:{port}"
    with (state / "localstripe.log").open("w") as log:
        front = subprocess.Popen(
            [sys.executable, str(FRONT), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert front.poll() is None, (state / "localstripe.log").read_text()
            try:
                httpx.get(f"{stripe_url}/_config/front/requests", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "localstripe did not start"
                time.sleep(0.1)
        secret_key = "sk_test_" + secrets.token_hex(12)
        webhook_secret = "whsec_" + secrets.token_hex(16)
        billing_env = {
            "TOLLGATE_BILLING_STRIPE_SECRET_KEY": secret_key,
            "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET": webhook_secret,
            "TOLLGATE_BILLING_STRIPE_API_BASE": stripe_url,
            "TOLLGATE_BILLING_STRIPE_SYNC_INTERVAL_SECONDS": "1",
            "TOLLGATE_BILLING_CATALOG": json.dumps(CATALOG),
            # Invoice a period as soon as it ends, and collect it at once.
            "TOLLGATE_BILLING_USAGE_GRACE_SECONDS": "0",
            "TOLLGATE_BILLING_PAYMENT_COLLECTION_INTERVAL_SECONDS": "1",
        }
        with Stack(state_dir=state / "stack", ports=Ports.free(), billing_env=billing_env) as info:
            # Stripe's webhook endpoint: the gateway's public route.
            registered = httpx.post(
                f"{stripe_url}/_config/webhooks/tollgate",
                json={
                    "url": f"{info.gateway_url}/v1/billing/webhooks/stripe",
                    "secret": webhook_secret,
                },
            )
            registered.raise_for_status()
            yield StripeStack(info=info, stripe_url=stripe_url, secret_key=secret_key)
    finally:
        front.terminate()
        front.wait(timeout=10)


def poll(call: Any, until: Any, *, seconds: float = 30, pause: float = 0.2) -> httpx.Response:
    """Call until the answer satisfies `until` (a deadline only, never a timing assertion)."""
    deadline = time.monotonic() + seconds
    while True:
        response = call()
        if until(response) or time.monotonic() > deadline:
            return response
        time.sleep(pause)


def test_usage_is_invoiced_paid_in_stripe_and_reported_back_through_the_gateway(stripe_stack):
    gateway = stripe_stack.info.gateway_url
    account = sign_up(gateway, "Stripe Payer")
    key, admin = account.key, account.admin
    subscription = poll(
        lambda: httpx.get(f"{gateway}/v1/billing/subscription", headers=key),
        lambda response: response.status_code == 200,
    )
    assert subscription.status_code == 200, subscription.text

    # A period on the metered plan starts now.
    changed = httpx.post(
        f"{gateway}/v1/billing/subscription/change",
        json={"plan": "payg", "interval": "year", "at": "now"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text

    # The card, given on Stripe's page; Stripe's webhook reaches billing through the gateway.
    checkout = httpx.post(f"{gateway}/v1/billing/payment-method/checkout", headers=admin)
    assert checkout.status_code == 201, checkout.text
    completed = httpx.post(
        f"{stripe_stack.stripe_url}/_config/front/checkout/{checkout.json()['id']}/complete",
        json={"number": GOOD_CARD},
    )
    assert completed.status_code == 200, completed.text
    method = poll(
        lambda: httpx.get(f"{gateway}/v1/billing/payment-method", headers=key),
        lambda response: response.status_code == 200,
    )
    assert method.status_code == 200, method.text
    assert (method.json()["provider"], method.json()["last4"]) == ("stripe", "4242")

    # Usage through the demo API, until metering counted it.
    for _ in range(5):
        assert httpx.get(f"{gateway}/api/demo/hello", headers=key).status_code == 200

    def metered(response: httpx.Response) -> list[dict[str, Any]]:
        return [line for line in response.json()["lines"] if line["kind"] == "metered"]

    upcoming = poll(
        lambda: httpx.get(f"{gateway}/v1/billing/invoices/upcoming", headers=key),
        lambda response: [line["quantity"] for line in metered(response)] == ["5"],
    )
    assert [line["quantity"] for line in metered(upcoming)] == ["5"], upcoming.text

    # The period ends; the operator closes it now. Usage is billed by whole minutes (ADR 0018):
    # the period must reach into the next minute for the calls' minute to be its own.
    started = datetime.fromisoformat(changed.json()["current_period_start"])
    next_minute = started.replace(second=0, microsecond=0) + timedelta(minutes=1)
    time.sleep(max(0.0, (next_minute - datetime.now(UTC)).total_seconds()) + 1)
    canceled = httpx.post(
        f"{gateway}/v1/billing/subscription/cancel", json={"at": "now"}, headers=admin
    )
    assert canceled.status_code == 200, canceled.text
    login = httpx.post(
        f"{gateway}/v1/auth/login",
        json={
            "email": stripe_stack.info.superadmin_email,
            "password": stripe_stack.info.superadmin_password,
        },
    )
    assert login.status_code == 200, login.text
    operator = {"Authorization": f"Bearer {login.json()['access_token']}"}
    closed = httpx.post(f"{gateway}/v1/billing/admin/invoices/close-periods", headers=operator)
    assert closed.status_code == 200, closed.text

    listed = httpx.get(f"{gateway}/v1/billing/invoices", headers=key)
    assert listed.status_code == 200, listed.text
    invoices = [
        httpx.get(f"{gateway}/v1/billing/invoices/{item['id']}", headers=key).json()
        for item in listed.json()["items"]
    ]
    [invoice] = [invoice for invoice in invoices if invoice["plan"] == "payg"]
    [line] = metered(httpx.get(f"{gateway}/v1/billing/invoices/{invoice['id']}", headers=key))
    assert (line["meter"], line["quantity"], line["amount"]) == ("api_requests", "5", 125)
    assert invoice["total"] == 125

    # The collection job pushes it to Stripe, which charges the card.
    paid = poll(
        lambda: httpx.get(f"{gateway}/v1/billing/invoices/{invoice['id']}", headers=key),
        lambda response: response.json()["state"] == "paid",
    )
    assert paid.json()["state"] == "paid", paid.text
    in_stripe = [
        stripe_invoice
        for stripe_invoice in stripe_stack.stripe("/v1/invoices", limit=100)["data"]
        if stripe_invoice["metadata"].get("tollgate_invoice_id") == invoice["id"]
    ]
    assert [(i["status"], i["amount_paid"]) for i in in_stripe] == [("paid", 125)]
    assert sorted(item["amount"] for item in in_stripe[0]["lines"]["data"]) == sorted(
        line["amount"] for line in paid.json()["lines"]
    )

    # Stripe's invoice.payment_succeeded went through the gateway and was accepted; the payment
    # counts once (the pay call's answer had already told billing).
    delivered = poll(
        lambda: httpx.Response(200, json=stripe_stack.deliveries()),
        lambda response: any(
            d["type"] == "invoice.payment_succeeded" and d["object_id"] == in_stripe[0]["id"]
            for d in response.json()
        ),
    ).json()
    [succeeded] = [
        d
        for d in delivered
        if d["type"] == "invoice.payment_succeeded" and d["object_id"] == in_stripe[0]["id"]
    ]
    assert succeeded["status"] == 200, succeeded
    assert json.loads(succeeded["body"])["outcome"] in ("applied", "duplicate")
    checkout_delivery = [d for d in delivered if d["type"] == "checkout.session.completed"]
    assert [(d["status"], json.loads(d["body"])["outcome"]) for d in checkout_delivery] == [
        (200, "applied")
    ]
