"""Meters as an organisation manages them: define, list, read, change, archive; the built-in."""

import pytest

from .conftest import assert_problem, create_meter, database_state, event

API_REQUESTS = {
    "key": "api_requests",
    "name": "API requests",
    "aggregation": "COUNT",
    "value_property": None,
    "group_by": ["route", "method", "status", "key_id", "meter"],
    "built_in": True,
    "created_at": None,
    "updated_at": None,
    "archived_at": None,
}


async def test_create_then_read_a_meter(client, acme):
    created = await create_meter(
        client,
        acme,
        key="llm_tokens",
        name="  LLM tokens  ",
        aggregation="SUM",
        value_property="tokens",
        group_by=["model", "region", "model"],
    )
    assert created["key"] == "llm_tokens"
    assert created["name"] == "LLM tokens"
    assert created["aggregation"] == "SUM"
    assert created["value_property"] == "tokens"
    assert created["group_by"] == ["model", "region"]
    assert created["built_in"] is False
    assert created["archived_at"] is None
    assert created["created_at"] == created["updated_at"]

    fetched = await client.get("/v1/meters/llm_tokens", headers=acme.user("member"))
    assert fetched.status_code == 200
    assert fetched.json() == created


@pytest.mark.parametrize(
    ("aggregation", "value_property"),
    [
        ("SUM", "tokens"),
        ("MAX", "gb"),
        ("MIN", "latency"),
        ("LATEST", "seats"),
        ("UNIQUE_COUNT", "user_id"),
        ("COUNT", None),
    ],
)
async def test_every_aggregation_can_be_defined(client, acme, aggregation, value_property):
    body = {"key": "m", "name": "M", "aggregation": aggregation}
    if value_property:
        body["value_property"] = value_property
    response = await client.post("/v1/meters", json=body, headers=acme.admin)
    assert response.status_code == 201, response.text
    assert response.json()["aggregation"] == aggregation
    assert response.json()["value_property"] == value_property


async def test_the_built_in_meter_is_listed_first_for_every_org(client, acme, globex):
    await create_meter(client, acme, key="traces", aggregation="COUNT")
    await create_meter(client, acme, key="bytes_stored", value_property="bytes")
    listed = await client.get("/v1/meters", headers=acme.user("member"))
    assert listed.status_code == 200
    assert listed.json()[0] == API_REQUESTS
    assert [meter["key"] for meter in listed.json()] == ["api_requests", "bytes_stored", "traces"]

    others = await client.get("/v1/meters", headers=globex.user("member"))
    assert others.json() == [API_REQUESTS]
    built_in = await client.get("/v1/meters/api_requests", headers=globex.key("read"))
    assert built_in.json() == API_REQUESTS


async def test_the_built_in_meter_cannot_be_changed_archived_or_redefined(client, acme, db):
    before = await database_state(db)
    changed = await client.patch(
        "/v1/meters/api_requests", json={"name": "Calls"}, headers=acme.admin
    )
    assert_problem(changed, 409, "built-in-meter")
    archived = await client.delete("/v1/meters/api_requests", headers=acme.admin)
    assert_problem(archived, 409, "built-in-meter")
    redefined = await client.post(
        "/v1/meters",
        json={"key": "api_requests", "name": "Mine", "aggregation": "COUNT"},
        headers=acme.admin,
    )
    assert_problem(redefined, 409, "meter-key-taken")
    assert await database_state(db) == before


async def test_a_key_is_unique_per_org_but_free_in_another(client, acme, globex):
    await create_meter(client, acme, key="traces", aggregation="COUNT")
    again = await client.post(
        "/v1/meters",
        json={"key": "traces", "name": "Other", "aggregation": "COUNT"},
        headers=acme.admin,
    )
    assert_problem(again, 409, "meter-key-taken")
    assert (await create_meter(client, globex, key="traces", aggregation="COUNT"))["key"]


async def test_patch_changes_name_and_group_by_only(client, acme):
    created = await create_meter(client, acme, group_by=["model"])
    response = await client.patch(
        "/v1/meters/llm_tokens",
        json={"name": "Tokens", "group_by": ["region"]},
        headers=acme.admin,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["name"], changed["group_by"]) == ("Tokens", ["region"])
    assert changed["updated_at"] > created["updated_at"]
    assert changed["aggregation"] == "SUM"

    for fixed in ({"aggregation": "MAX"}, {"value_property": "other"}, {"key": "renamed"}):
        refused = await client.patch("/v1/meters/llm_tokens", json=fixed, headers=acme.admin)
        body = assert_problem(refused, 422, "validation-error")
        assert body["errors"][0]["loc"] == ["body", next(iter(fixed))]
    for empty in ({}, {"name": None}, {"group_by": None}):
        refused = await client.patch("/v1/meters/llm_tokens", json=empty, headers=acme.admin)
        assert_problem(refused, 422, "validation-error")
    fetched = await client.get("/v1/meters/llm_tokens", headers=acme.admin)
    assert fetched.json() == changed


async def test_archiving_keeps_the_meter_and_its_events_and_the_key_stays_taken(client, acme, db):
    await create_meter(client, acme)
    sent = await client.post("/v1/events", json=event("before-archive"), headers=acme.key("write"))
    assert sent.json()["inserted"] == 1

    archived = await client.delete("/v1/meters/llm_tokens", headers=acme.admin)
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    again = await client.delete("/v1/meters/llm_tokens", headers=acme.admin)
    assert again.json()["archived_at"] == archived.json()["archived_at"]

    listed = await client.get("/v1/meters", headers=acme.admin)
    assert [meter["key"] for meter in listed.json()] == ["api_requests"]
    with_archived = await client.get("/v1/meters?include_archived=true", headers=acme.admin)
    assert [meter["key"] for meter in with_archived.json()] == ["api_requests", "llm_tokens"]
    assert (await client.get("/v1/meters/llm_tokens", headers=acme.admin)).json() == (
        archived.json()
    )

    changed = await client.patch("/v1/meters/llm_tokens", json={"name": "X"}, headers=acme.admin)
    assert_problem(changed, 409, "meter-archived")
    recreated = await client.post(
        "/v1/meters",
        json={"key": "llm_tokens", "name": "Again", "aggregation": "COUNT"},
        headers=acme.admin,
    )
    assert_problem(recreated, 409, "meter-key-taken")
    events = await client.get("/v1/events", headers=acme.admin)
    assert [stored["id"] for stored in events.json()["items"]] == ["before-archive"]


GOOD = {"key": "tokens", "name": "Tokens", "aggregation": "SUM", "value_property": "tokens"}


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"key": "Tokens"}, "key"),
        ({"key": "1tokens"}, "key"),
        ({"key": "tok-ens"}, "key"),
        ({"key": "t" * 64}, "key"),
        ({"key": ""}, "key"),
        ({"key": 7}, "key"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"aggregation": "AVG"}, "aggregation"),
        ({"aggregation": "sum"}, "aggregation"),
        ({"value_property": None}, None),
        ({"aggregation": "COUNT"}, None),
        ({"value_property": "$.tokens"}, "value_property"),
        ({"group_by": [f"p{number}" for number in range(11)]}, "group_by"),
        ({"group_by": "model"}, "group_by"),
        ({"group_by": ["ok", "not ok"]}, "group_by"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_an_invalid_meter_is_refused_and_nothing_is_stored(client, acme, db, changes, where):
    before = await database_state(db)
    response = await client.post("/v1/meters", json={**GOOD, **changes}, headers=acme.admin)
    body = assert_problem(response, 422, "validation-error")
    if where is not None:
        assert body["errors"][0]["loc"][:2] == ["body", where], body
    assert await database_state(db) == before


async def test_another_orgs_meter_is_not_found(client, acme, globex, db):
    await create_meter(client, acme)
    before = await database_state(db)
    for response in (
        await client.get("/v1/meters/llm_tokens", headers=globex.admin),
        await client.patch("/v1/meters/llm_tokens", json={"name": "Mine"}, headers=globex.admin),
        await client.delete("/v1/meters/llm_tokens", headers=globex.admin),
        await client.get("/v1/meters/no_such_meter", headers=acme.admin),
        await client.get("/v1/meters/Not%20A%20Key%00", headers=acme.admin),
    ):
        assert_problem(response, 404, "meter-not-found")
    assert await database_state(db) == before
    assert (await client.get("/v1/meters/llm_tokens", headers=acme.admin)).json()["name"] == (
        "LLM tokens"
    )


async def test_members_and_read_keys_read_only_admins_and_admin_keys_change(client, acme, db):
    await create_meter(client, acme)
    for reader in (acme.user("member"), acme.user("billing_admin"), acme.key("read")):
        assert (await client.get("/v1/meters", headers=reader)).status_code == 200
        assert (await client.get("/v1/meters/llm_tokens", headers=reader)).status_code == 200

    before = await database_state(db)
    for caller in (acme.user("member"), acme.key("read", "write")):
        created = await client.post("/v1/meters", json={**GOOD, "key": "other"}, headers=caller)
        assert_problem(created, 403, "forbidden")
        changed = await client.patch("/v1/meters/llm_tokens", json={"name": "X"}, headers=caller)
        assert_problem(changed, 403, "forbidden")
        assert_problem(await client.delete("/v1/meters/llm_tokens", headers=caller), 403)
    listed = await client.get("/v1/meters", headers=acme.key("write"))
    assert_problem(listed, 403, "forbidden")
    assert await database_state(db) == before

    by_admin_key = await client.post("/v1/meters", json=GOOD, headers=acme.key("admin"))
    assert by_admin_key.status_code == 201, by_admin_key.text


async def test_callers_outside_an_organisation_are_refused(client, mint_identity, db):
    before = await database_state(db)
    assert_problem(await client.get("/v1/meters"), 401, "unauthorized")
    for caller in (
        mint_identity("anonymous"),
        mint_identity("service", principal_id="gateway"),
        mint_identity("user", principal_id="8d3a3e3c-4b8a-4a4e-9d2f-0c9d5a1b2c3d"),
    ):
        response = await client.post("/v1/meters", json=GOOD, headers=caller)
        assert_problem(response, 401, "unauthorized")
    assert await database_state(db) == before
