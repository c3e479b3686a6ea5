"""The subscription endpoints: who may read and change, bad input, no-ops and events."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from .conftest import assert_problem, database_state
from .subscription_helpers import new_subscription, outbox_events, pending_items

CHANGE = "/v1/billing/subscription/change"


@pytest.fixture
async def subscribed(db, acme):
    await new_subscription(db, org_id=acme.org_id, plan="free", now=datetime.now(UTC))
    return acme


async def test_members_and_read_keys_see_the_subscription(client, subscribed):
    for headers in (subscribed.user("member"), subscribed.key("read")):
        response = await client.get("/v1/billing/subscription", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["organization_id"] == str(subscribed.org_id)
        assert (body["plan"], body["rate_limit_tier"], body["interval"], body["status"]) == (
            "free",
            "free",
            "month",
            "active",
        )
        assert (body["version"], body["trial_end"], body["scheduled_change"]) == (1, None, None)
    refused = await client.get("/v1/billing/subscription", headers=subscribed.key("write"))
    assert_problem(refused, 403, "forbidden")


async def test_another_organisation_never_sees_it(client, subscribed, globex):
    response = await client.get("/v1/billing/subscription", headers=globex.user("org_admin"))
    assert_problem(response, 404, "subscription-not-found")
    change = await client.post(
        CHANGE, json={"plan": "pro", "at": "now"}, headers=globex.user("org_admin")
    )
    assert_problem(change, 404, "subscription-not-found")


@pytest.mark.parametrize("role", ["member", "support_agent"])
async def test_only_admins_change_it(client, db, subscribed, role):
    before = await database_state(db, subscribed)
    for headers in (subscribed.user(role), subscribed.key("read", "write")):
        for path, body in (
            (CHANGE, {"plan": "pro", "at": "now"}),
            ("/v1/billing/subscription/cancel", {"at": "now"}),
        ):
            assert_problem(await client.post(path, json=body, headers=headers), 403, "forbidden")
    assert await database_state(db, subscribed) == before


@pytest.mark.parametrize(
    ("who", "credential"),
    [("org_admin", "user"), ("billing_admin", "user"), ("admin", "key")],
)
async def test_an_upgrade_starts_the_trial_and_publishes_the_new_limits(
    client, db, subscribed, who, credential
):
    headers = subscribed.user(who) if credential == "user" else subscribed.key(who)
    response = await client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["plan"], body["rate_limit_tier"], body["status"], body["version"]) == (
        "pro",
        "pro",
        "trialing",
        2,
    )
    assert body["proration"] == []  # no charge during a trial
    trial_end = datetime.fromisoformat(body["trial_end"])
    assert trial_end == datetime.fromisoformat(body["current_period_end"])
    assert (trial_end - datetime.fromisoformat(body["current_period_start"])).days == 14

    async with db() as session:
        events = await outbox_events(session, subscribed.org_id)
    subject, data = events[-1]
    assert subject == "tollgate.billing.subscription.updated"
    assert data == {
        "subscription_id": body["id"],
        "organization_id": str(subscribed.org_id),
        "customer_id": body["customer_id"],
        "plan": "pro",
        "rate_limit_tier": "pro",
        "status": "trialing",
        "interval": "month",
        "current_period_start": data["current_period_start"],
        "current_period_end": data["current_period_end"],
        "trial_end": data["trial_end"],
        "cancel_at_period_end": False,
        "canceled_at": None,
        "scheduled_change": None,
        "version": 2,
    }
    assert datetime.fromisoformat(data["trial_end"]) == trial_end
    customer = await client.get("/v1/billing/customer", headers=headers)
    assert customer.json()["plan"]["key"] == "pro"  # the customer follows its subscription


async def test_repeating_a_change_charges_nothing_more(client, db, subscribed):
    admin = subscribed.user("org_admin")
    # No trial left, so the upgrade is charged for the rest of the period.
    await db_trial_used(db, subscribed)
    first = await client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=admin)
    assert first.status_code == 200, first.text
    [line] = first.json()["proration"]
    assert (line["kind"], line["plan"], line["currency"]) == ("proration_charge", "pro", "USD")
    assert 0 < line["amount"] <= 9900
    again = await client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=admin)
    assert again.status_code == 200, again.text
    assert (again.json()["proration"], again.json()["version"]) == ([], first.json()["version"])
    async with db() as session:
        assert len(await pending_items(session, subscribed.org_id)) == 1


async def db_trial_used(db, org):
    async with db() as session, session.begin():
        await session.execute(
            sa.text("UPDATE billing.subscriptions SET trial_used = true WHERE org_id = :org"),
            {"org": org.org_id},
        )


async def test_cancel_and_resume(client, subscribed):
    admin = subscribed.user("billing_admin")
    nothing = await client.post(
        "/v1/billing/subscription/cancel", json={"at": "now"}, headers=admin
    )
    assert_problem(nothing, 409, "nothing-to-cancel")
    await client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=admin)
    pending = await client.post(
        "/v1/billing/subscription/cancel", json={"at": "period_end"}, headers=admin
    )
    assert pending.status_code == 200, pending.text
    assert (pending.json()["plan"], pending.json()["cancel_at_period_end"]) == ("pro", True)
    resumed = await client.post("/v1/billing/subscription/resume", headers=admin)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["cancel_at_period_end"] is False
    version = resumed.json()["version"]
    again = await client.post("/v1/billing/subscription/resume", headers=admin)
    assert again.json()["version"] == version  # nothing pending: nothing changes

    now = await client.post("/v1/billing/subscription/cancel", json={"at": "now"}, headers=admin)
    assert now.status_code == 200, now.text
    body = now.json()
    assert (body["plan"], body["status"], body["proration"]) == ("free", "canceled", [])
    assert body["canceled_at"] is not None


async def test_a_scheduled_change_is_shown(client, subscribed):
    admin = subscribed.user("org_admin")
    response = await client.post(
        CHANGE, json={"plan": "pro", "interval": "year", "at": "period_end"}, headers=admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plan"] == "free"
    assert body["scheduled_change"] == {
        "plan": "pro",
        "interval": "year",
        "at": body["current_period_end"],
    }


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"at": "now"}, ["body", "plan"]),
        ({"plan": "pro"}, ["body", "at"]),
        ({"plan": "pro", "at": "tomorrow"}, ["body", "at"]),
        ({"plan": "pro", "at": "now", "interval": "week"}, ["body", "interval"]),
        ({"plan": "Pro Plan!", "at": "now"}, ["body", "plan"]),
        ({"plan": 5, "at": "now"}, ["body", "plan"]),
        ({"plan": "pro", "at": "now", "prorate": False}, ["body", "prorate"]),
        ({"plan": "x" * 10_000, "at": "now"}, ["body", "plan"]),
    ],
)
async def test_bad_changes_are_refused_per_field_and_change_nothing(
    client, db, subscribed, body, location
):
    before = await database_state(db, subscribed)
    response = await client.post(CHANGE, json=body, headers=subscribed.user("org_admin"))
    problem = assert_problem(response, 422, "validation-error")
    assert location in [error["loc"] for error in problem["errors"]]
    assert await database_state(db, subscribed) == before


async def test_unknown_plans_and_intervals_not_sold(client, db, subscribed):
    admin = subscribed.user("org_admin")
    before = await database_state(db, subscribed)
    unknown = await client.post(CHANGE, json={"plan": "platinum", "at": "now"}, headers=admin)
    assert_problem(unknown, 404, "plan-not-found")
    yearly = await client.post(
        CHANGE, json={"plan": "enterprise", "interval": "year", "at": "now"}, headers=admin
    )
    assert_problem(yearly, 409, "interval-not-offered")
    bad_cancel = await client.post(
        "/v1/billing/subscription/cancel", json={"at": "later"}, headers=admin
    )
    assert_problem(bad_cancel, 422, "validation-error")
    assert await database_state(db, subscribed) == before


async def test_reading_an_ended_period_rolls_it_forward(client, db, subscribed):
    async with db() as session, session.begin():
        # As if the roller had not run since the period ended.
        await session.execute(
            sa.text(
                "UPDATE billing.subscriptions SET anchor_at = :start,"
                " current_period_start = :start, current_period_end = :end"
                " WHERE org_id = :org"
            ),
            {
                "start": datetime(2026, 1, 31, 10, tzinfo=UTC),
                "end": datetime(2026, 2, 28, 10, tzinfo=UTC),
                "org": subscribed.org_id,
            },
        )
    response = await client.get("/v1/billing/subscription", headers=subscribed.user())
    assert response.status_code == 200, response.text
    body = response.json()
    start = datetime.fromisoformat(body["current_period_start"])
    end = datetime.fromisoformat(body["current_period_end"])
    assert start <= datetime.now(UTC) < end
    assert (start.day, start.hour) in {(28, 10), (29, 10), (30, 10), (31, 10)}  # the anchor's
    assert body["version"] == 2
    async with db() as session:
        events = await outbox_events(session, subscribed.org_id)
    assert [subject for subject, _ in events][-1] == "tollgate.billing.subscription.updated"


async def test_if_match_refuses_a_change_made_from_a_stale_view(client, db, subscribed):
    admin = subscribed.user("org_admin")
    read = await client.get("/v1/billing/subscription", headers=admin)
    assert read.headers["ETag"] == '"1"'
    first = await client.post(
        CHANGE, json={"plan": "pro", "at": "now"}, headers={**admin, "If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"2"'

    before = await database_state(db, subscribed)
    stale = await client.post(
        CHANGE, json={"plan": "enterprise", "at": "now"}, headers={**admin, "If-Match": '"1"'}
    )
    problem = assert_problem(stale, 412, "subscription-changed")
    assert problem["version"] == 2
    for garbage in ("1", '"one"', '""', "W/"):
        refused = await client.post(
            "/v1/billing/subscription/resume", headers={**admin, "If-Match": garbage}
        )
        assert_problem(refused, 400, "bad-request")
    assert await database_state(db, subscribed) == before

    for tag in ('"2"', 'W/"2"', '"7", "2"', "*"):
        resumed = await client.post(
            "/v1/billing/subscription/resume", headers={**admin, "If-Match": tag}
        )
        assert resumed.status_code == 200, (tag, resumed.text)
