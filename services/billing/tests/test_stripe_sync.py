"""Customers and the catalog in Stripe (localstripe behind the test front): each object made
once, whatever runs twice or is retried."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import stripe
from fastapi import FastAPI

from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.catalog.schemas import PlanCreate
from tollgate_billing.catalog.service import create_plan
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.stripe_api.catalog import sync_catalog
from tollgate_billing.stripe_api.client import CUSTOMER_METADATA, metadata_of
from tollgate_billing.stripe_api.customers import ensure_stripe_customer, sync_customers
from tollgate_billing.stripe_api.repository import StripeRepository

from .conftest import LocalStripe
from .subscription_helpers import new_subscription

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


async def stripe_customers_of(localstripe: LocalStripe, customer_id: uuid.UUID) -> list[str]:
    """The Stripe customers that say they are ours (metadata tollgate_customer_id)."""
    found = []
    listed = await localstripe.client().v1.customers.list_async({"limit": 100})
    async for customer in listed.auto_paging_iter():
        if metadata_of(customer).get(CUSTOMER_METADATA) == str(customer_id):
            found.append(customer.id)
    return found


async def customer_id_of(app: FastAPI, org_id: uuid.UUID) -> uuid.UUID:
    async with app.state.sessionmaker() as session:
        customer = await CustomerRepository(session).of_org(org_id)
    assert customer is not None
    return customer.id


async def test_customer_sync_gives_each_customer_one_stripe_customer(stripe_app, localstripe):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    customer_id = await customer_id_of(stripe_app, org_id)

    # Two replicas' loops at once, then a later round: one Stripe customer.
    await asyncio.gather(sync_customers(sessions, client), sync_customers(sessions, client))
    await sync_customers(sessions, client)

    async with sessions() as session:
        recorded = await StripeRepository(session).stripe_customer_of(customer_id)
    assert await stripe_customers_of(localstripe, customer_id) == [recorded]
    stored = await localstripe.client().v1.customers.retrieve_async(recorded)
    assert stored.name == "Acme"
    assert metadata_of(stored)["tollgate_org_id"] == str(org_id)
    creations = [
        request
        for request in await localstripe.requests()
        if request["path"] == "/v1/customers"
        and request["idempotency_key"] == f"tollgate-customer-{customer_id}"
    ]
    assert creations  # every creation carries the key derived from our id


async def test_a_call_retried_after_a_timeout_sends_the_same_key_and_makes_one_object(
    stripe_app, localstripe
):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    org_id = await new_subscription(sessions, now=NOW)
    customer_id = await customer_id_of(stripe_app, org_id)
    # Stripe makes the customer but answers after the client's 2-second limit: the SDK retries.
    await localstripe.delay_next("/v1/customers", seconds=4)

    stripe_id = await ensure_stripe_customer(sessions, client, customer_id=customer_id)

    key = f"tollgate-customer-{customer_id}"
    sent = [r for r in await localstripe.requests() if r["idempotency_key"] == key]
    assert [r["path"] for r in sent] == ["/v1/customers", "/v1/customers"]
    assert await stripe_customers_of(localstripe, customer_id) == [stripe_id]


async def test_catalog_sync_twice_creates_each_object_once(stripe_app, localstripe):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    key = f"team-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await create_plan(
            session,
            data=PlanCreate(
                key=key,
                name="Team",
                currency="EUR",
                monthly_price="49.50",
                yearly_price="495.00",
                rate_limit_tier="pro",
            ),
        )

    first = await sync_catalog(sessions, client)
    before = len(await localstripe.requests())
    second = await sync_catalog(sessions, client)

    assert f"tollgate-{key}" in first.products_created
    assert {f"tollgate-{key}-month-4950eur", f"tollgate-{key}-year-49500eur"} <= set(
        first.plans_created
    )
    assert (second.products_created, second.plans_created) == ([], [])
    assert len(await localstripe.requests()) == before  # nothing even asked of Stripe
    stripe_view = localstripe.client()
    monthly = await stripe_view.v1.plans.retrieve_async(f"tollgate-{key}-month-4950eur")
    assert (monthly.amount, monthly.currency, monthly.interval, monthly.product) == (
        4950,
        "eur",
        "month",
        f"tollgate-{key}",
    )
    # Every plan of the catalog has its product, and a plan per interval it is sold in.
    async with sessions() as session:
        plans = await PlanRepository(session).list(include_archived=False)
        for plan in plans:
            assert await StripeRepository(session).product_of(plan.key) == f"tollgate-{plan.key}"


async def test_a_record_lost_here_finds_the_stripe_object_instead_of_failing(
    stripe_app, localstripe
):
    """Stripe keeps an Idempotency-Key a day; later, the id Stripe already has is read."""
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    await sync_catalog(sessions, client)
    async with sessions() as session, session.begin():
        await session.execute(sa.text("DELETE FROM billing.stripe_plans WHERE plan_key = 'pro'"))
    await localstripe.forget_idempotency_keys()

    result = await sync_catalog(sessions, client)

    assert result.plans_created == []
    async with sessions() as session:
        assert await StripeRepository(session).has_plan("tollgate-pro-month-9900usd")


def test_the_sync_command_reports_what_it_created_and_nothing_the_second_time(
    stripe_app, localstripe
):
    settings = stripe_app.state.settings
    environment = {
        "PATH": os.environ["PATH"],
        "TOLLGATE_DATABASE_URL": settings.database_url,
        "TOLLGATE_NATS_URL": settings.nats_url,
        "TOLLGATE_IDENTITY_PUBLIC_KEY": settings.identity_public_key,
        "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY": settings.identity_private_key,
        "TOLLGATE_BILLING_METERING_URL": settings.metering_url,
        "TOLLGATE_ENV": "test",
        "TOLLGATE_BILLING_STRIPE_SECRET_KEY": localstripe.secret_key,
        "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET": localstripe.webhook_secret,
        "TOLLGATE_BILLING_STRIPE_API_BASE": localstripe.url,
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tollgate_billing.cli", "stripe-sync-catalog"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first, second = run(), run()

    assert first.returncode == 0, first.stderr
    assert "Stripe catalog in sync" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "0 product(s) and 0 plan(s) created" in second.stdout
    without_key = subprocess.run(
        [sys.executable, "-m", "tollgate_billing.cli", "stripe-sync-catalog"],
        env={k: v for k, v in environment.items() if "STRIPE" not in k},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert without_key.returncode != 0
    assert "TOLLGATE_BILLING_STRIPE_SECRET_KEY is not set" in without_key.stderr


async def test_stripe_refusing_one_customer_does_not_stop_the_others(stripe_app, localstripe):
    """A customer Stripe refuses stays without a Stripe id and is tried again next round."""
    sessions = stripe_app.state.sessionmaker
    org_id = await new_subscription(sessions, now=NOW)
    customer_id = await customer_id_of(stripe_app, org_id)
    refusing = stripe.StripeClient(
        "sk_test_" + uuid.uuid4().hex,
        base_addresses={"api": localstripe.url + "/nowhere"},
        http_client=stripe.HTTPXClient(timeout=2),
    )

    assert await sync_customers(sessions, refusing) == 0

    async with sessions() as session:
        assert await StripeRepository(session).stripe_customer_of(customer_id) is None
    assert await sync_customers(sessions, stripe_app.state.stripe) >= 1


async def test_replicas_recording_the_same_stripe_customer_at_once_all_succeed(stripe_app):
    """Two replicas' syncs got the same Stripe customer (same Idempotency-Key) and insert the
    same row at the same moment. PostgreSQL raised a unique violation on stripe_customer_id
    when the race met that index before customer_id's (the ON CONFLICT target): the flaky
    failure of the test above. Many rounds of eight at once, so the race shows if it is back."""
    sessions = stripe_app.state.sessionmaker

    async def record(customer_id: uuid.UUID, stripe_id: str) -> str:
        async with sessions() as session, session.begin():
            return await StripeRepository(session).add_customer(customer_id, stripe_id)

    for _ in range(100):
        customer_id = await customer_id_of(stripe_app, await new_subscription(sessions, now=NOW))
        stripe_id = f"cus_{uuid.uuid4().hex[:14]}"

        stored = await asyncio.gather(*(record(customer_id, stripe_id) for _ in range(8)))

        assert stored == [stripe_id] * 8
