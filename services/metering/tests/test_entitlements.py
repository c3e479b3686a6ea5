"""Entitlements: what each organisation may use per period, its overrides, the evaluation and the
events it publishes (read from the outbox of the test's own rolled-back transaction; the
evaluator is run by the test, so every step is deterministic)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tollgate_metering.entitlements.evaluation import evaluate
from tollgate_metering.entitlements.evaluator import evaluate_changes
from tollgate_metering.entitlements.status import billing_period
from tollgate_metering.gateway_usage.handlers import record_gateway_usage_batch
from tollgate_metering.organizations.repository import OrganizationPlanRepository
from tollgate_shared.events.envelope import CloudEvent

from .conftest import assert_problem, create_meter, database_state, event
from .test_gateway_usage import usage_event

ENTITLEMENT_UPDATED = "tollgate.metering.entitlement.updated"
ENTITLEMENT_REMOVED = "tollgate.metering.entitlement.removed"
THRESHOLD_REACHED = "tollgate.metering.usage.threshold_reached"


@pytest.fixture
def operator(mint_identity):
    """The platform's super admin, outside any organisation."""
    return mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))


@pytest.fixture
def catalog(metering_app):
    return metering_app.state.plan_catalog


async def evaluate_now(db, catalog) -> int:
    return await evaluate_changes(db, catalog=catalog)


async def published(db, org, event_type: str) -> list[dict[str, Any]]:
    """The data of the events of this type the organisation's changes put in the outbox."""
    async with db() as session:
        rows = await session.execute(
            sa.text(
                "SELECT payload FROM metering.outbox WHERE subject = :type"
                " AND payload ->> 'orgid' = :org ORDER BY position"
            ),
            {"type": event_type, "org": str(org.org_id)},
        )
        return [row.payload["data"] for row in rows]


async def send(client, org, *values: float) -> None:
    body = [event(data={"tokens": value}) for value in values]
    response = await client.post("/v1/events", json=body, headers=org.key("write"))
    assert response.status_code == 200, response.text


async def override(client, operator, org, meter: str, **terms: Any):
    return await client.put(
        f"/v1/admin/entitlements/{org.org_id}/{meter}", json=terms, headers=operator
    )


async def entitlements(client, org) -> dict[str, Any]:
    response = await client.get("/v1/entitlements", headers=org.key("read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_meter(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["meter"]: item for item in listing["data"]}


async def test_a_new_organisation_has_the_free_plan_request_quota(client, acme) -> None:
    listing = await entitlements(client, acme)
    period = billing_period(datetime.now(UTC))
    assert listing["plan"] == "free"
    assert listing["period_start"] == period.start.isoformat().replace("+00:00", "Z")
    assert listing["data"] == [
        {
            "meter": "api_requests",
            "limit": 100_000,
            "mode": "hard",
            "grace_percent": 0,
            "source": "plan",
            "used": 0,
            "remaining": 100_000,
            "status": "within",
            "period_start": listing["period_start"],
            "resets_at": listing["period_end"],
        }
    ]


async def test_the_plan_published_by_keys_decides_the_defaults(client, db, acme) -> None:
    async with db() as session, session.begin():
        await OrganizationPlanRepository(session).record(
            org_id=acme.org_id, plan="pro", changed_at=datetime.now(UTC)
        )
    listing = await entitlements(client, acme)
    assert listing["plan"] == "pro"
    quota = by_meter(listing)["api_requests"]
    assert (quota["limit"], quota["mode"], quota["grace_percent"]) == (5_000_000, "soft", 10)


async def test_an_older_plan_fact_never_replaces_a_newer_one(db, acme) -> None:
    newer, older = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    async with db() as session, session.begin():
        repository = OrganizationPlanRepository(session)
        assert await repository.record(org_id=acme.org_id, plan="pro", changed_at=newer)
        assert not await repository.record(org_id=acme.org_id, plan="free", changed_at=older)
        assert await repository.plan_of(acme.org_id) == "pro"


async def test_an_unknown_plan_tier_falls_back_to_the_default_plan(client, db, acme) -> None:
    async with db() as session, session.begin():
        await OrganizationPlanRepository(session).record(
            org_id=acme.org_id, plan="platinum", changed_at=datetime.now(UTC)
        )
    assert (await entitlements(client, acme))["plan"] == "free"


async def test_thresholds_and_states_as_usage_grows(client, db, catalog, acme, operator) -> None:
    await create_meter(client, acme)
    response = await override(client, operator, acme, "llm_tokens", limit=100, grace_percent=10)
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "override"

    await send(client, acme, 40)
    await evaluate_now(db, catalog)
    [state] = [
        s for s in await published(db, acme, ENTITLEMENT_UPDATED) if s["meter"] == "llm_tokens"
    ]
    assert state == {
        "organization_id": str(acme.org_id),
        "meter": "llm_tokens",
        "limit": 100,
        "mode": "hard",
        "grace_percent": 10,
        "used": 40,
        "status": "within",
        "period_start": state["period_start"],
        "period_end": state["period_end"],
        "version": 1,
    }
    assert await published(db, acme, THRESHOLD_REACHED) == []

    await send(client, acme, 5, 5)  # 50: the 50 % threshold, still within
    await evaluate_now(db, catalog)
    thresholds = await published(db, acme, THRESHOLD_REACHED)
    assert [(t["threshold_percent"], t["used"], t["limit"]) for t in thresholds] == [(50, 50, 100)]
    # Within the limit, more usage publishes no new state.
    assert len(await published(db, acme, ENTITLEMENT_UPDATED)) == 1

    await send(client, acme, 50.5)  # 100.5: 80 % and 100 % at once, in grace
    await evaluate_now(db, catalog)
    thresholds = await published(db, acme, THRESHOLD_REACHED)
    assert [t["threshold_percent"] for t in thresholds] == [50, 80, 100]
    states = await published(db, acme, ENTITLEMENT_UPDATED)
    assert [(s["status"], s["used"], s["version"]) for s in states][-1] == ("grace", 100.5, 2)

    await send(client, acme, 9.5)  # 110: past the grace
    await evaluate_now(db, catalog)
    states = await published(db, acme, ENTITLEMENT_UPDATED)
    assert [(s["status"], s["used"], s["version"]) for s in states][-1] == ("exceeded", 110, 3)
    assert len(await published(db, acme, THRESHOLD_REACHED)) == 3

    quota = by_meter(await entitlements(client, acme))["llm_tokens"]
    assert (quota["used"], quota["remaining"], quota["status"]) == (110, 0, "exceeded")


async def test_each_threshold_fires_once_however_often_it_is_evaluated(
    client, db, catalog, acme, operator
) -> None:
    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit=10)
    await send(client, acme, 10)
    now = datetime.now(UTC)
    for _ in range(5):
        async with db() as session, session.begin():
            await evaluate(
                session, org_id=acme.org_id, meter_key="llm_tokens", catalog=catalog, now=now
            )
    assert [t["threshold_percent"] for t in await published(db, acme, THRESHOLD_REACHED)] == [
        50,
        80,
        100,
    ]
    # Nothing changed between the evaluations: one state, published once.
    assert len(await published(db, acme, ENTITLEMENT_UPDATED)) == 1


async def test_a_new_period_starts_fresh(client, db, catalog, acme, operator) -> None:
    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit=10)
    await send(client, acme, 10)
    await evaluate_now(db, catalog)
    next_month = billing_period(datetime.now(UTC)).end
    async with db() as session, session.begin():
        await evaluate(
            session, org_id=acme.org_id, meter_key="llm_tokens", catalog=catalog, now=next_month
        )
    states = await published(db, acme, ENTITLEMENT_UPDATED)
    assert [(s["status"], s["used"], s["period_start"]) for s in states] == [
        ("exceeded", 10, states[0]["period_start"]),
        ("within", 0, next_month.isoformat().replace("+00:00", "Z")),
    ]


async def test_a_changed_limit_republishes_and_rearms_the_thresholds(
    client, db, catalog, acme, operator
) -> None:
    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit=10)
    await send(client, acme, 6)
    await evaluate_now(db, catalog)
    await override(client, operator, acme, "llm_tokens", limit=5, mode="soft")
    await evaluate_now(db, catalog)
    states = await published(db, acme, ENTITLEMENT_UPDATED)
    assert [(s["limit"], s["mode"], s["status"], s["version"]) for s in states] == [
        (10, "hard", "within", 1),
        (5, "soft", "exceeded", 2),
    ]
    thresholds = await published(db, acme, THRESHOLD_REACHED)
    assert [(t["limit"], t["threshold_percent"]) for t in thresholds] == [
        (10, 50),
        (5, 50),
        (5, 80),
        (5, 100),
    ]


async def test_lifting_the_limit_removes_the_entitlement(
    client, db, catalog, acme, operator
) -> None:
    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit=10)
    await send(client, acme, 20)
    await evaluate_now(db, catalog)
    response = await override(client, operator, acme, "llm_tokens", limit=None)
    assert response.status_code == 200, response.text
    assert response.json()["limit"] is None and response.json()["remaining"] is None
    await evaluate_now(db, catalog)
    [removed] = await published(db, acme, ENTITLEMENT_REMOVED)
    assert (removed["status"], removed["limit"], removed["version"]) == ("removed", None, 2)
    # Back to the plan, which has no quota on this meter: nothing to publish again.
    response = await client.delete(
        f"/v1/admin/entitlements/{acme.org_id}/llm_tokens", headers=operator
    )
    assert response.status_code == 204
    await evaluate_now(db, catalog)
    assert len(await published(db, acme, ENTITLEMENT_REMOVED)) == 1
    assert "llm_tokens" not in by_meter(await entitlements(client, acme))


async def test_only_served_calls_to_the_operators_api_use_the_request_quota(
    client, db, catalog, acme, operator
) -> None:
    """429s and 402s (refused) and calls to Tollgate's own endpoints (route meter null) are not
    counted."""
    await override(client, operator, acme, "api_requests", limit=3)
    calls = [
        {"status": 200},
        {"status": 201},
        {"status": 500},
        {"status": 429},
        {"status": 429},
        {"status": 402},
        {"status": 200, "route": "usage", "meter": None},
    ]
    async with db() as session, session.begin():
        await record_gateway_usage_batch(
            session,
            [CloudEvent.model_validate(usage_event(acme.org_id, **call)) for call in calls],
        )
    quota = by_meter(await entitlements(client, acme))["api_requests"]
    assert (quota["used"], quota["status"]) == (3, "exceeded")
    await evaluate_now(db, catalog)
    [state] = await published(db, acme, ENTITLEMENT_UPDATED)
    assert (state["used"], state["status"]) == (3, "exceeded")
    # All seven are still in the usage and analytics: only the quota leaves them out.
    usage = (await client.get("/v1/usage", headers=acme.key("read"))).json()
    assert [row["value"] for row in usage["data"] if row["meter"] == "api_requests"] == [7]


async def test_the_gateway_snapshot_holds_the_flagged_states_only(
    client, db, catalog, acme, globex, operator, mint_identity
) -> None:
    for org, limit in ((acme, 10), (globex, 1000)):
        await create_meter(client, org)
        await override(client, operator, org, "llm_tokens", limit=limit)
        await send(client, org, 15)
    await evaluate_now(db, catalog)
    service = mint_identity("service", principal_id="gateway")
    response = await client.get("/internal/v1/entitlements", headers=service)
    assert response.status_code == 200, response.text
    flagged = [item for item in response.json()["items"] if item["meter"] == "llm_tokens"]
    assert [(item["organization_id"], item["status"]) for item in flagged] == [
        (str(acme.org_id), "exceeded")
    ]
    response = await client.get("/internal/v1/entitlements", headers=acme.admin)
    assert_problem(response, 403)


async def test_a_failing_entitlement_is_marked_again_and_the_others_go_on(
    client, db, catalog, acme, globex, operator, monkeypatch
) -> None:
    for org in (acme, globex):
        await create_meter(client, org)
        await override(client, operator, org, "llm_tokens", limit=10)
        await send(client, org, 6)

    from tollgate_metering.entitlements import evaluator

    async def failing_for_acme(session, *, org_id, **kwargs):
        if org_id == acme.org_id:
            raise RuntimeError("boom")
        await evaluate(session, org_id=org_id, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate", failing_for_acme)
    await evaluate_now(db, catalog)
    assert await published(db, acme, ENTITLEMENT_UPDATED) == []
    assert len(await published(db, globex, ENTITLEMENT_UPDATED)) == 1
    monkeypatch.undo()
    await evaluate_now(db, catalog)
    assert len(await published(db, acme, ENTITLEMENT_UPDATED)) == 1


class TestOverridesAreTheOperatorsAlone:
    async def test_org_admins_and_keys_cannot_set_them(self, client, acme) -> None:
        url = f"/v1/admin/entitlements/{acme.org_id}/api_requests"
        for headers in (acme.admin, acme.key("admin")):
            assert_problem(await client.put(url, json={"limit": 10**9}, headers=headers), 403)
            assert_problem(await client.delete(url, headers=headers), 403)
            assert_problem(
                await client.get(f"/v1/admin/entitlements/{acme.org_id}", headers=headers), 403
            )

    async def test_the_operator_sees_any_organisation(self, client, acme, operator) -> None:
        await override(client, operator, acme, "api_requests", limit=7, mode="soft")
        response = await client.get(f"/v1/admin/entitlements/{acme.org_id}", headers=operator)
        assert response.status_code == 200
        quota = by_meter(response.json())["api_requests"]
        assert (quota["limit"], quota["mode"], quota["source"]) == (7, "soft", "override")

    async def test_an_override_of_one_org_is_invisible_to_another(
        self, client, acme, globex, operator
    ) -> None:
        await override(client, operator, acme, "api_requests", limit=7)
        quota = by_meter(await entitlements(client, globex))["api_requests"]
        assert (quota["limit"], quota["source"]) == (100_000, "plan")

    async def test_a_meter_the_org_does_not_have_is_404(
        self, client, acme, globex, operator
    ) -> None:
        await create_meter(client, globex)  # globex's meter, not acme's
        assert_problem(await override(client, operator, acme, "llm_tokens", limit=5), 404)
        response = await client.delete(
            f"/v1/admin/entitlements/{acme.org_id}/api_requests", headers=operator
        )
        assert_problem(response, 404)  # no override to remove

    async def test_an_archived_meter_is_409(self, client, acme, operator) -> None:
        await create_meter(client, acme)
        await client.delete("/v1/meters/llm_tokens", headers=acme.admin)
        assert_problem(await override(client, operator, acme, "llm_tokens", limit=5), 409)

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"limit": 0},
            {"limit": -1},
            {"limit": "NaN"},
            {"limit": 1e16},
            {"limit": "lots"},
            {"limit": 5, "mode": "strict"},
            {"limit": 5, "grace_percent": 1001},
            {"limit": 5, "grace_percent": 2.5},
            {"limit": 5, "extra": 1},
            [],
        ],
    )
    async def test_bad_terms_are_422_and_change_nothing(
        self, client, db, acme, operator, body
    ) -> None:
        before = await database_state(db)
        url = f"/v1/admin/entitlements/{acme.org_id}/api_requests"
        assert_problem(await client.put(url, json=body, headers=operator), 422)
        assert await database_state(db) == before

    async def test_bad_ids_in_the_path_are_4xx(self, client, operator) -> None:
        for path in (
            "/v1/admin/entitlements/not-a-uuid/api_requests",
            f"/v1/admin/entitlements/{uuid.uuid4()}/API%00",
        ):
            response = await client.put(path, json={"limit": 5}, headers=operator)
            assert_problem(response, 422)


async def test_usage_is_exact_for_fractional_values(client, db, catalog, acme, operator) -> None:
    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit="0.3")
    await send(client, acme, 0.1, 0.1, 0.1)  # a float sum would be 0.30000000000000004
    quota = by_meter(await entitlements(client, acme))["llm_tokens"]
    assert quota["used"] == 0.3 and quota["status"] == "exceeded"
    assert Decimal(str(quota["remaining"])) == 0


async def test_one_round_takes_every_mark_of_a_busy_entitlement(
    client, db, catalog, acme, operator
) -> None:
    """A busy organisation leaves one mark per stored batch; one evaluation covers them all, so
    marks cannot pile up faster than rounds take them."""
    from tollgate_metering.entitlements.changes import mark_changed

    await create_meter(client, acme)
    await override(client, operator, acme, "llm_tokens", limit=10)
    async with db() as session, session.begin():
        for _ in range(2500):  # more than one round's MARKS_PER_ROUND
            await mark_changed(session, org_id=acme.org_id, meter_keys=["llm_tokens"])
    assert await evaluate_now(db, catalog) >= 1
    async with db() as session:
        left = await session.scalar(
            sa.text("SELECT count(*) FROM metering.usage_changes WHERE org_id = :org"),
            {"org": acme.org_id},
        )
    assert left == 0
