"""API keys as an organisation manages them: create, list, get, change, revoke, rotate."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tollgate_shared import api_key_format

from .conftest import assert_problem, database_state, only, outbox_events


async def create_key(client, tenant, **body):
    response = await client.post("/v1/keys", json={"name": "Server", **body}, headers=tenant.admin)
    assert response.status_code == 201, response.text
    return response.json()


async def verify(client, gateway, secret):
    return await client.post(
        "/internal/v1/keys/verify",
        json={"secret_hash": api_key_format.hash_key(secret)},
        headers=gateway,
    )


async def test_create_key_shows_the_secret_once(client, acme, db):
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await create_key(
        client,
        acme,
        name="  Billing export  ",
        scopes=["write", "read", "write"],
        environment="test",
        expires_at=expires_at.isoformat(),
        rate_limit={"per_minute": 60},
    )
    secret = created["key"]
    assert api_key_format.is_well_formed(secret)
    assert secret.startswith("tg_test_")
    assert created["name"] == "Billing export"
    assert created["scopes"] == ["read", "write"]
    assert created["environment"] == "test"
    assert created["rate_limit"] == {"per_minute": 60}
    assert datetime.fromisoformat(created["expires_at"]) == expires_at
    assert created["status"] == "active"
    assert created["masked_key"] == f"{secret[:12]}…{secret[-4:]}"
    assert created["request_count"] == 0
    assert created["last_used_at"] is None

    fetched = await client.get(f"/v1/keys/{created['id']}", headers=acme.admin)
    assert fetched.status_code == 200
    assert "key" not in fetched.json()
    assert secret not in fetched.text
    assert fetched.json()["masked_key"] == created["masked_key"]

    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.key.created"),
        key_id=created["id"],
    )
    assert event["data"] == {
        "key_id": created["id"],
        "organization_id": str(acme.org_id),
        "name": "Billing export",
        "environment": "test",
        "scopes": ["read", "write"],
        "rate_limit": {"per_minute": 60},
        "expires_at": expires_at.isoformat(),
    }
    assert secret not in str(event)


async def test_create_key_defaults(client, acme):
    created = await create_key(client, acme)
    assert created["key"].startswith("tg_live_")
    assert created["scopes"] == ["read", "write"]
    assert created["expires_at"] is None
    assert created["rate_limit"] is None


async def test_a_key_works_at_once(client, acme, gateway):
    created = await create_key(client, acme, scopes=["read"])
    verified = await verify(client, gateway, created["key"])
    assert verified.status_code == 200, verified.text
    assert verified.json()["key_id"] == created["id"]
    assert verified.json()["scopes"] == ["read"]


async def test_list_is_masked_and_newest_first(client, acme):
    created = [await create_key(client, acme, name=f"k{index}") for index in range(3)]
    response = await client.get("/v1/keys", headers=acme.admin)
    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    ids = [item["id"] for item in page["items"]]
    assert ids == [key["id"] for key in reversed(created)] + [str(acme.first_key_id)]
    for item in page["items"]:
        assert "key" not in item
        assert item["masked_key"].startswith(("tg_live_", "tg_test_"))
        assert "…" in item["masked_key"]
    for key in created:
        assert key["key"] not in response.text


async def test_cursor_pagination_walks_every_key_exactly_once(client, acme):
    created = [await create_key(client, acme, name=f"k{index}") for index in range(6)]
    expected = [key["id"] for key in reversed(created)] + [str(acme.first_key_id)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/keys", params=params, headers=acme.admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_a_key_created_between_pages_does_not_shift_the_next_page(client, acme):
    created = [await create_key(client, acme, name=f"k{index}") for index in range(3)]
    first = (await client.get("/v1/keys", params={"limit": 2}, headers=acme.admin)).json()
    await create_key(client, acme, name="late")
    second = (
        await client.get(
            "/v1/keys", params={"limit": 2, "cursor": first["next_cursor"]}, headers=acme.admin
        )
    ).json()
    assert [item["id"] for item in first["items"] + second["items"]] == [
        created[2]["id"],
        created[1]["id"],
        created[0]["id"],
        str(acme.first_key_id),
    ]


async def test_a_member_can_read_keys_but_not_create_them(client, acme, db):
    member = await acme.member("member")
    listed = await client.get("/v1/keys", headers=member)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [str(acme.first_key_id)]
    assert (await client.get(f"/v1/keys/{acme.first_key_id}", headers=member)).status_code == 200
    before = await database_state(db)
    assert_problem(await client.post("/v1/keys", json={"name": "x"}, headers=member), 403)
    assert await database_state(db) == before


async def test_patch_changes_only_the_fields_sent(client, acme, db):
    created = await create_key(client, acme, rate_limit={"per_minute": 60})
    expires_at = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    response = await client.patch(
        f"/v1/keys/{created['id']}",
        json={"name": "Renamed", "expires_at": expires_at.isoformat()},
        headers=acme.admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert datetime.fromisoformat(body["expires_at"]) == expires_at
    assert body["scopes"] == created["scopes"]
    assert body["rate_limit"] == {"per_minute": 60}
    assert body["updated_at"] > created["updated_at"]

    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.key.updated"),
        key_id=created["id"],
    )
    assert event["data"]["changed"] == ["expires_at", "name"]
    assert event["data"]["name"] == "Renamed"
    assert event["data"]["expires_at"] == expires_at.isoformat()
    assert event["data"]["rate_limit"] == {"per_minute": 60}


async def test_patch_null_removes_expiry_and_rate_limit(client, acme):
    expires_at = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    created = await create_key(client, acme, expires_at=expires_at, rate_limit={"per_hour": 1000})
    response = await client.patch(
        f"/v1/keys/{created['id']}",
        json={"expires_at": None, "rate_limit": None},
        headers=acme.admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["expires_at"] is None
    assert response.json()["rate_limit"] is None


async def test_patch_scopes_and_rate_limit_are_what_the_gateway_sees(client, acme, gateway):
    created = await create_key(client, acme)
    response = await client.patch(
        f"/v1/keys/{created['id']}",
        json={"scopes": ["admin"], "rate_limit": {"per_second": 5, "per_day": None}},
        headers=acme.admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["rate_limit"] == {"per_second": 5}
    verified = (await verify(client, gateway, created["key"])).json()
    assert verified["scopes"] == ["admin"]
    assert verified["rate_limit"] == {"per_second": 5}


async def test_patch_with_the_same_values_changes_nothing(client, acme, db):
    created = await create_key(client, acme, name="Same")
    before = await database_state(db)
    response = await client.patch(
        f"/v1/keys/{created['id']}", json={"name": "Same"}, headers=acme.admin
    )
    assert response.status_code == 200
    assert response.json()["updated_at"] == created["updated_at"]
    assert await database_state(db) == before


async def test_revoke_stops_the_key_and_writes_one_event(client, acme, gateway, db):
    created = await create_key(client, acme)
    response = await client.delete(f"/v1/keys/{created['id']}", headers=acme.admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    assert response.json()["revoked_at"] is not None

    refused = await verify(client, gateway, created["key"])
    assert_problem(refused, 404, "invalid-key")
    assert refused.json()["reason"] == "revoked"

    before = await database_state(db)
    again = await client.delete(f"/v1/keys/{created['id']}", headers=acme.admin)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == response.json()["revoked_at"]
    assert await database_state(db) == before

    events = await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.key.revoked")
    assert only(events, key_id=created["id"])["data"]["organization_id"] == str(acme.org_id)
    listed = (await client.get("/v1/keys", headers=acme.admin)).json()["items"]
    assert {item["id"]: item["status"] for item in listed}[created["id"]] == "revoked"


async def test_a_revoked_key_can_be_neither_changed_nor_rotated(client, acme, db):
    created = await create_key(client, acme)
    await client.delete(f"/v1/keys/{created['id']}", headers=acme.admin)
    before = await database_state(db)
    patch = await client.patch(
        f"/v1/keys/{created['id']}", json={"name": "again"}, headers=acme.admin
    )
    assert_problem(patch, 409, "key-revoked")
    rotate = await client.post(f"/v1/keys/{created['id']}/rotate", headers=acme.admin)
    assert_problem(rotate, 409, "key-revoked")
    assert await database_state(db) == before


async def test_an_expired_key_is_not_rotated_and_nothing_changes(client, acme, gateway, db):
    """A new secret would be refused like the old one: 409, not a 200 with a dead secret."""
    created = await create_key(client, acme)
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": created["id"]},
        )
    before = await database_state(db)
    for body in (None, {"grace_seconds": 0}, {"grace_seconds": 3600}):
        response = await client.post(
            f"/v1/keys/{created['id']}/rotate", json=body, headers=acme.admin
        )
        problem = assert_problem(response, 409, "key-expired")
        assert "key" not in problem
    assert await database_state(db) == before
    assert (await verify(client, gateway, created["key"])).json()["reason"] == "expired"

    # Given a new expiry, the key can be rotated again.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    renewed = await client.patch(
        f"/v1/keys/{created['id']}", json={"expires_at": later}, headers=acme.admin
    )
    assert renewed.status_code == 200, renewed.text
    rotated = await client.post(f"/v1/keys/{created['id']}/rotate", headers=acme.admin)
    assert rotated.status_code == 200, rotated.text
    assert (await verify(client, gateway, rotated.json()["key"])).status_code == 200


async def test_rotate_gives_a_new_secret_and_the_old_one_keeps_working_for_the_grace(
    client, acme, gateway, db
):
    created = await create_key(client, acme)
    before = datetime.now(UTC)
    response = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"grace_seconds": 3600}, headers=acme.admin
    )
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    rotated = response.json()
    new_secret = rotated["key"]
    assert rotated["id"] == created["id"]
    assert new_secret != created["key"]
    assert api_key_format.is_well_formed(new_secret)
    assert rotated["masked_key"] == f"{new_secret[:12]}…{new_secret[-4:]}"
    grace_end = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert before + timedelta(hours=1) <= grace_end <= after + timedelta(hours=1)

    old = await verify(client, gateway, created["key"])
    assert old.status_code == 200, old.text
    assert datetime.fromisoformat(old.json()["expires_at"]) == grace_end
    new = await verify(client, gateway, new_secret)
    assert new.status_code == 200
    assert new.json()["expires_at"] is None

    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.key.rotated"),
        key_id=created["id"],
    )
    assert datetime.fromisoformat(event["data"]["previous_secret_expires_at"]) == grace_end
    assert new_secret not in str(event)
    assert created["key"] not in str(event)


async def test_rotate_without_a_body_uses_the_default_grace_of_a_day(client, acme, gateway):
    before = datetime.now(UTC)
    response = await client.post(f"/v1/keys/{acme.first_key_id}/rotate", headers=acme.admin)
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    grace_end = datetime.fromisoformat(response.json()["previous_secret_expires_at"])
    assert before + timedelta(days=1) <= grace_end <= after + timedelta(days=1)
    assert (await verify(client, gateway, acme.first_key)).status_code == 200


async def test_rotate_with_no_grace_ends_the_old_secret_at_once(client, acme, gateway):
    created = await create_key(client, acme)
    response = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"grace_seconds": 0}, headers=acme.admin
    )
    assert response.status_code == 200
    refused = await verify(client, gateway, created["key"])
    assert_problem(refused, 404, "invalid-key")
    assert refused.json()["reason"] == "expired"
    assert (await verify(client, gateway, response.json()["key"])).status_code == 200


async def test_rotating_twice_never_extends_an_older_secret(client, acme, gateway):
    created = await create_key(client, acme)
    first = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"grace_seconds": 60}, headers=acme.admin
    )
    second = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"grace_seconds": 7200}, headers=acme.admin
    )
    assert first.status_code == second.status_code == 200
    oldest = await verify(client, gateway, created["key"])
    assert datetime.fromisoformat(oldest.json()["expires_at"]) == datetime.fromisoformat(
        first.json()["previous_secret_expires_at"]
    )
    middle = await verify(client, gateway, first.json()["key"])
    assert datetime.fromisoformat(middle.json()["expires_at"]) == datetime.fromisoformat(
        second.json()["previous_secret_expires_at"]
    )


async def test_unknown_key_is_404_on_every_endpoint(client, acme, db):
    missing = uuid.uuid4()
    before = await database_state(db)
    for method, path, body in [
        ("GET", f"/v1/keys/{missing}", None),
        ("PATCH", f"/v1/keys/{missing}", {"name": "x"}),
        ("DELETE", f"/v1/keys/{missing}", None),
        ("POST", f"/v1/keys/{missing}/rotate", None),
    ]:
        response = await client.request(method, path, json=body, headers=acme.admin)
        assert_problem(response, 404, "key-not-found")
    assert await database_state(db) == before


async def test_an_admin_key_manages_keys_and_is_recorded_as_creator(client, acme, db):
    admin_key = acme.as_key("admin")
    created = await client.post("/v1/keys", json={"name": "By key"}, headers=admin_key)
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    assert (await client.get("/v1/keys", headers=admin_key)).status_code == 200
    patched = await client.patch(f"/v1/keys/{key_id}", json={"name": "B"}, headers=admin_key)
    assert patched.status_code == 200
    rotated = await client.post(f"/v1/keys/{key_id}/rotate", headers=admin_key)
    assert rotated.status_code == 200
    revoked = await client.delete(f"/v1/keys/{key_id}", headers=admin_key)
    assert revoked.json()["status"] == "revoked"
    async with db() as session:
        created_by = (
            await session.execute(
                sa.text("SELECT created_by FROM keys.api_keys WHERE id = :id"), {"id": key_id}
            )
        ).scalar_one()
    assert created_by == f"key:{acme.first_key_id}"


async def test_a_read_or_write_key_cannot_manage_keys(client, acme, db):
    before = await database_state(db)
    for scopes in (("read",), ("read", "write")):
        headers = acme.as_key(*scopes)
        for method, path, body in [
            ("GET", "/v1/keys", None),
            ("POST", "/v1/keys", {"name": "x"}),
            ("GET", f"/v1/keys/{acme.first_key_id}", None),
            ("PATCH", f"/v1/keys/{acme.first_key_id}", {"name": "x"}),
            ("DELETE", f"/v1/keys/{acme.first_key_id}", None),
            ("POST", f"/v1/keys/{acme.first_key_id}/rotate", None),
        ]:
            response = await client.request(method, path, json=body, headers=headers)
            assert_problem(response, 403)
    assert await database_state(db) == before


async def test_the_api_description_says_how_the_override_applies(client):
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    description = " ".join(schema["RateLimitOverride"]["description"].split())
    assert "The gateway enforces it" in description
    assert "organisation's plan still applies" in description
