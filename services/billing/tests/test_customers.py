"""One billing customer per organisation, made from the keys service's organization.created."""

import json
import uuid

import pytest
import sqlalchemy as sa
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY

from tollgate_billing.customers.handlers import customer_creator
from tollgate_billing.events import BillingEvent
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import ensure_stream, stream_for_service

from .conftest import (
    Org,
    add_customer,
    assert_problem,
    organization_created,
    publish_to_keys,
    published_on_billing,
    wait_until_consumed,
)


async def customers_of(app, org_id):
    async with app.state.runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.text("SELECT * FROM billing.customers WHERE org_id = :org"), {"org": org_id}
        )
        return [dict(row) for row in rows.mappings()]


async def outbox_events_of(app, org_id):
    async with app.state.runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.text(
                "SELECT payload FROM billing.outbox WHERE subject = :type"
                " AND payload->>'orgid' = :org"
            ),
            {"type": BillingEvent.CUSTOMER_CREATED.value, "org": str(org_id)},
        )
        return [row[0] for row in rows]


async def test_a_new_organisation_becomes_a_customer_on_the_free_plan(
    committed_app, committing_client, nats_client, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    js = nats_client.jetstream()
    await ensure_stream(js, stream_for_service("billing"))
    watcher = f"billing-customer-watch-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        "BILLING",
        ConsumerConfig(
            durable_name=watcher,
            filter_subject=BillingEvent.CUSTOMER_CREATED.value,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
        ),
    )
    try:
        event = organization_created(org.org_id, name="Acme Robotics")
        await publish_to_keys(nats_client, event)
        await wait_until_consumed(committed_app, [event["id"]])

        response = await committing_client.get("/v1/billing/customer", headers=org.user("member"))
        assert response.status_code == 200, response.text
        customer = response.json()
        assert customer["organization_id"] == str(org.org_id)
        assert customer["name"] == "Acme Robotics"
        assert customer["plan"]["key"] == "free"
        assert customer["plan"]["rate_limit_tier"] == "free"

        # Published on the BILLING stream by the outbox relay, with the facts consumers need.
        published = await published_on_billing(js, watcher, f"customers/{customer['id']}")
        assert published.type == "tollgate.billing.customer.created"
        assert published.source == "/tollgate/billing"
        assert published.orgid == str(org.org_id)
        assert published.data == {
            "customer_id": customer["id"],
            "organization_id": str(org.org_id),
            "name": "Acme Robotics",
            "plan": "free",
            "rate_limit_tier": "free",
        }
    finally:
        await js.delete_consumer("BILLING", watcher)


async def test_redeliveries_and_repeats_create_nothing_more(
    committed_app, nats_client, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    first = organization_created(org.org_id)
    await publish_to_keys(nats_client, first)
    await wait_until_consumed(committed_app, [first["id"]])
    [customer] = await customers_of(committed_app, org.org_id)
    labels = {
        "consumer": committed_app.state.settings.organizations_consumer_name,
        "outcome": "duplicate",
    }
    skipped_before = REGISTRY.get_sample_value("tollgate_events_consumed_total", labels) or 0

    # The same event again (a redelivery), then another event for the same organisation.
    other = organization_created(org.org_id, name="Renamed")
    await publish_to_keys(nats_client, dict(first))
    await publish_to_keys(nats_client, other)
    await wait_until_consumed(committed_app, [first["id"], other["id"]])
    # Consumed in stream order: the redelivery was seen (and skipped) before the other event.
    skipped = REGISTRY.get_sample_value("tollgate_events_consumed_total", labels)
    assert skipped == skipped_before + 1
    assert await customers_of(committed_app, org.org_id) == [customer]
    assert len(await outbox_events_of(committed_app, org.org_id)) == 1


async def test_the_customer_is_only_the_callers_own(client, db, acme, globex):
    await add_customer(db, acme.org_id, "pro")
    mine = await client.get("/v1/billing/customer", headers=acme.key("read"))
    assert mine.status_code == 200
    assert mine.json()["plan"]["key"] == "pro"
    assert mine.json()["plan"]["monthly_price"] == "99.00"

    theirs = await client.get("/v1/billing/customer", headers=globex.user("org_admin"))
    body = assert_problem(theirs, 404, "customer-not-found")
    assert str(acme.org_id) not in json.dumps(body)


async def test_reading_the_customer_needs_an_org_identity(client, db, acme, operator):
    await add_customer(db, acme.org_id, "free")
    assert_problem(await client.get("/v1/billing/customer"), 401)
    assert_problem(await client.get("/v1/billing/customer", headers=acme.key("write")), 403)
    # A super admin outside any organisation has no customer to read.
    assert_problem(await client.get("/v1/billing/customer", headers=operator), 401)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"organization_id": "not-a-uuid", "name": "Acme"},
        {"organization_id": str(uuid.uuid4())},
        {"organization_id": str(uuid.uuid4()), "name": ""},
    ],
)
async def test_a_malformed_event_raises_so_it_is_retried_then_dead_lettered(db, data):
    event = CloudEvent(
        source="/tollgate/keys", type="tollgate.keys.organization.created", data=data
    )
    async with db() as session:
        with pytest.raises(ValueError):
            await customer_creator("free")(session, event)
        # Rows this transaction wrote (other suites' organisations arrive at any moment).
        written = await session.scalar(
            sa.text(
                "SELECT (SELECT count(*) FROM billing.customers WHERE xmin = mine)"
                " + (SELECT count(*) FROM billing.outbox WHERE xmin = mine)"
                " FROM (SELECT pg_current_xact_id()::xid AS mine) AS this_transaction"
            )
        )
    assert written == 0


async def test_the_handler_creates_one_customer_one_subscription_and_their_events(db):
    org_id = uuid.uuid4()
    handler = customer_creator("pro")
    event = CloudEvent(
        source="/tollgate/keys",
        type="tollgate.keys.organization.created",
        orgid=str(org_id),
        data={"organization_id": str(org_id), "name": "Initech", "plan": "free"},
    )
    async with db() as session, session.begin():
        await handler(session, event)
        await handler(session, event)
    async with db() as session:
        rows = (
            await session.execute(
                sa.text("SELECT name, plan_key FROM billing.customers WHERE org_id = :org"),
                {"org": org_id},
            )
        ).all()
        subscriptions = (
            await session.execute(
                sa.text(
                    "SELECT plan_key, interval, status, trial_used, version"
                    " FROM billing.subscriptions WHERE org_id = :org"
                ),
                {"org": org_id},
            )
        ).all()
        events = await session.scalars(
            sa.text(
                "SELECT subject FROM billing.outbox WHERE payload->>'orgid' = :org"
                " ORDER BY position"
            ),
            {"org": str(org_id)},
        )
        subjects = list(events)
    assert [tuple(row) for row in rows] == [("Initech", "pro")]
    # Started on the plan, monthly and active; a paid first plan uses up the trial.
    assert [tuple(row) for row in subscriptions] == [("pro", "month", "active", True, 1)]
    assert subjects == [
        "tollgate.billing.customer.created",
        "tollgate.billing.subscription.created",
    ]
