"""Stripe answering with an error of its own (a 500, an outage) is a 503 problem on our
endpoints that call it, never a 500 of ours."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import stripe
from aiohttp import web

from tollgate_billing.webhooks.repository import StripeEventRepository
from tollgate_shared.embedded import free_port

from .conftest import assert_problem, deliver
from .subscription_helpers import new_subscription

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


async def _stripe_is_down(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": {"type": "api_error", "message": "Stripe is having a bad day"}}, status=500
    )


@pytest.fixture
async def broken_stripe(stripe_app) -> AsyncIterator[None]:
    """The app's Stripe client pointed at a Stripe that answers 500 to everything."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _stripe_is_down)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    configured = stripe_app.state.stripe
    stripe_app.state.stripe = stripe.StripeClient(
        "sk_test_broken",
        base_addresses={"api": f"http://127.0.0.1:{port}"},
        http_client=stripe.HTTPXClient(timeout=2),
        max_network_retries=0,
    )
    try:
        yield
    finally:
        stripe_app.state.stripe = configured
        await runner.cleanup()


async def test_checkout_with_stripe_failing_is_a_503(
    stripe_app, stripe_client, broken_stripe, acme
):
    await new_subscription(stripe_app.state.sessionmaker, org_id=acme.org_id, now=NOW)
    response = await stripe_client.post(
        "/v1/billing/payment-method/checkout", headers=acme.user("billing_admin")
    )
    assert_problem(response, 503, "stripe-unavailable")


async def test_a_webhook_with_stripe_failing_is_a_503(
    stripe_app, stripe_client, broken_stripe, localstripe
):
    event = {
        "id": "evt_broken_stripe_1",
        "object": "event",
        "type": "invoice.paid",
        "data": {"object": {"id": "in_123", "object": "invoice"}},
        "created": int(NOW.timestamp()),
    }
    response = await deliver(stripe_client, localstripe, event)
    assert_problem(response, 503, "stripe-unavailable")
    # Not stored: Stripe's redelivery is applied once Stripe answers again.
    async with stripe_app.state.sessionmaker() as session:
        assert not await StripeEventRepository(session).seen("evt_broken_stripe_1")
