"""Billing's subscription status suspends an organisation for non-payment and reactivates it,
under the same version rule as the plan (ADR 0022); the gateway learns it from verified keys,
user access tokens and organization.updated."""

import uuid

import sqlalchemy as sa

from tollgate_shared import api_key_format

from .conftest import STRONG_PASSWORD, outbox_events
from .test_billing_plan import apply, subscription_event

UPDATED = "tollgate.keys.organization.updated"


async def suspension_of(db, org_id: uuid.UUID) -> tuple[bool, str, int]:
    async with db() as session:
        row = (
            await session.execute(
                sa.text(
                    "SELECT suspended, plan, plan_version FROM keys.organizations WHERE id = :id"
                ),
                {"id": org_id},
            )
        ).one()
    return row[0], row[1], row[2]


async def verified_suspension(client, gateway, key: str) -> bool:
    response = await client.post(
        "/internal/v1/keys/verify",
        json={"secret_hash": api_key_format.hash_key(key)},
        headers=gateway,
    )
    assert response.status_code == 200, response.text
    suspended: bool = response.json()["suspended"]
    return suspended


async def test_a_suspended_subscription_suspends_the_organisation_and_announces_it(
    db, client, acme, gateway, anonymous, access_tokens
):
    assert await verified_suspension(client, gateway, acme.first_key) is False
    await apply(db, subscription_event(acme.org_id, "pro", 2, status="suspended"))

    assert await suspension_of(db, acme.org_id) == (True, "pro", 2)
    [event] = await outbox_events(db, org_id=acme.org_id, type_=UPDATED)
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "name": "Acme",
        "plan": "pro",
        "suspended": True,
    }
    assert await verified_suspension(client, gateway, acme.first_key) is True
    # Every member sees it (they must be able to find out why calls are refused, and pay).
    member = await acme.member("member")
    organization = await client.get("/v1/organization", headers=member)
    assert organization.status_code == 200, organization.text
    assert organization.json()["suspended"] is True
    # A user's access token carries it: that is how the gateway knows about users' orgs.
    login = await client.post(
        "/v1/auth/login",
        json={"email": acme.email, "password": STRONG_PASSWORD},
        headers=anonymous,
    )
    assert login.status_code == 200, login.text
    assert access_tokens.verify(login.json()["access_token"])["suspended"] is True


async def test_paying_reactivates_with_a_newer_version(db, client, acme, gateway):
    await apply(db, subscription_event(acme.org_id, "free", 3, status="suspended"))
    await apply(db, subscription_event(acme.org_id, "free", 4, status="active"))

    assert await suspension_of(db, acme.org_id) == (False, "free", 4)
    events = await outbox_events(db, org_id=acme.org_id, type_=UPDATED)
    assert [event["data"]["suspended"] for event in events] == [True, False]
    assert await verified_suspension(client, gateway, acme.first_key) is False
    organization = await client.get("/v1/organization", headers=acme.admin)
    assert organization.json()["suspended"] is False


async def test_an_older_version_never_wins(db, acme):
    await apply(db, subscription_event(acme.org_id, "free", 7, status="suspended"))
    # Late: the active fact from before the suspension, then a duplicate at the same version.
    await apply(db, subscription_event(acme.org_id, "free", 6, status="active"))
    await apply(db, subscription_event(acme.org_id, "free", 7, status="active"))
    assert await suspension_of(db, acme.org_id) == (True, "free", 7)
    assert len(await outbox_events(db, org_id=acme.org_id, type_=UPDATED)) == 1

    # And the other way round: a late suspension does not undo a reactivation.
    await apply(db, subscription_event(acme.org_id, "free", 9, status="active"))
    await apply(db, subscription_event(acme.org_id, "free", 8, status="suspended"))
    assert await suspension_of(db, acme.org_id) == (False, "free", 9)


async def test_an_event_without_a_status_leaves_the_suspension_as_it_is(db, acme):
    await apply(db, subscription_event(acme.org_id, "free", 2, status="suspended"))
    without_status = subscription_event(acme.org_id, "pro", 3)
    del without_status.data["status"]
    await apply(db, without_status)
    assert await suspension_of(db, acme.org_id) == (True, "pro", 3)
    events = await outbox_events(db, org_id=acme.org_id, type_=UPDATED)
    assert [(e["data"]["plan"], e["data"]["suspended"]) for e in events] == [
        ("free", True),
        ("pro", True),
    ]


async def test_past_due_and_other_statuses_do_not_suspend(db, acme):
    for version, status in enumerate(("past_due", "trialing", "canceled", "active"), start=2):
        await apply(db, subscription_event(acme.org_id, "free", version, status=status))
        assert (await suspension_of(db, acme.org_id))[0] is False
    assert await outbox_events(db, org_id=acme.org_id, type_=UPDATED) == []


async def test_another_organisation_is_not_suspended(db, client, acme, globex, gateway):
    await apply(db, subscription_event(acme.org_id, "free", 2, status="suspended"))
    assert await verified_suspension(client, gateway, globex.first_key) is False
    assert (await suspension_of(db, globex.org_id))[0] is False
