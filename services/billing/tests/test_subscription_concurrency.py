"""Changes at once, and the roller beside the API: real commits on separate connections."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tollgate_billing.subscriptions.roller import roll_due_subscriptions

from .conftest import Org
from .subscription_helpers import new_subscription, pending_items

CHANGE = "/v1/billing/subscription/change"


async def test_two_identical_changes_at_once_prorate_once(
    committed_app, committing_client, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    sessions = committed_app.state.runtime.sessionmaker
    await new_subscription(
        sessions, org_id=org.org_id, plan="free", now=datetime.now(UTC), trial_used=True
    )
    admin = org.user("org_admin")
    responses = await asyncio.gather(
        *(
            committing_client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=admin)
            for _ in range(2)
        )
    )
    assert [response.status_code for response in responses] == [200, 200]
    # The row lock serialises them: the second sees the first's result and changes nothing.
    prorations = sorted(len(response.json()["proration"]) for response in responses)
    assert prorations == [0, 1]
    assert {response.json()["version"] for response in responses} == {2}
    async with sessions() as session:
        assert [item[:2] for item in await pending_items(session, org.org_id)] == [
            ("proration_charge", "pro")
        ]


async def test_two_different_changes_at_once_apply_one_after_the_other(
    committed_app, committing_client, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    sessions = committed_app.state.runtime.sessionmaker
    await new_subscription(
        sessions, org_id=org.org_id, plan="free", now=datetime.now(UTC), trial_used=True
    )
    admin = org.user("org_admin")
    responses = await asyncio.gather(
        committing_client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=admin),
        committing_client.post(CHANGE, json={"plan": "enterprise", "at": "now"}, headers=admin),
    )
    assert sorted(response.json()["version"] for response in responses) == [2, 3]
    last = max(responses, key=lambda response: response.json()["version"]).json()
    async with sessions() as session:
        items = await pending_items(session, org.org_id)
    # Whichever came second credits exactly what the first charged (same second or later).
    charges = [amount for kind, _, amount in items if kind == "proration_charge"]
    assert len(charges) == 2
    assert last["plan"] in ("pro", "enterprise")


async def test_the_roller_skips_a_row_an_api_change_holds(committed_app, mint_identity):
    org = Org(uuid.uuid4(), mint_identity)
    sessions = committed_app.state.runtime.sessionmaker
    started = datetime(2020, 1, 1, tzinfo=UTC)
    await new_subscription(sessions, org_id=org.org_id, plan="pro", now=started)
    later = started + timedelta(days=40)
    async with sessions() as holder, holder.begin():
        held = await holder.scalar(
            sa.text(
                "SELECT period_number FROM billing.subscriptions WHERE org_id = :org FOR UPDATE"
            ),
            {"org": org.org_id},
        )
        # Not blocked by the held row: it is skipped.
        await asyncio.wait_for(
            roll_due_subscriptions(sessions, default_plan="free", now=later), timeout=5
        )
        state = await holder.scalar(
            sa.text("SELECT period_number FROM billing.subscriptions WHERE org_id = :org"),
            {"org": org.org_id},
        )
        assert state == held
    await roll_due_subscriptions(sessions, default_plan="free", now=later)
    async with sessions() as session:
        number = await session.scalar(
            sa.text("SELECT period_number FROM billing.subscriptions WHERE org_id = :org"),
            {"org": org.org_id},
        )
    assert number >= 1  # rolled (by this round, or by the app's own roller meanwhile)


async def test_with_if_match_one_of_two_changes_from_the_same_view_wins(
    committed_app, committing_client, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    sessions = committed_app.state.runtime.sessionmaker
    await new_subscription(
        sessions, org_id=org.org_id, plan="free", now=datetime.now(UTC), trial_used=True
    )
    headers = {**org.user("org_admin"), "If-Match": '"1"'}
    responses = await asyncio.gather(
        committing_client.post(CHANGE, json={"plan": "pro", "at": "now"}, headers=headers),
        committing_client.post(CHANGE, json={"plan": "enterprise", "at": "now"}, headers=headers),
    )
    assert sorted(response.status_code for response in responses) == [200, 412]
    [winner] = [response.json() for response in responses if response.status_code == 200]
    async with sessions() as session:
        items = await pending_items(session, org.org_id)
    assert [(kind, plan) for kind, plan, _ in items] == [("proration_charge", winner["plan"])]
