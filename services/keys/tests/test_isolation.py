"""Another organisation's ids are unknown ids: 404 everywhere, never listed, never changed."""

import uuid

import pytest

from .conftest import STRONG_PASSWORD, assert_problem, database_state


def key_requests(key_id):
    return [
        ("GET", f"/v1/keys/{key_id}", None),
        ("PATCH", f"/v1/keys/{key_id}", {"name": "hijacked"}),
        ("DELETE", f"/v1/keys/{key_id}", None),
        ("POST", f"/v1/keys/{key_id}/rotate", None),
        ("POST", f"/v1/keys/{key_id}/rotate", {"grace_seconds": 0}),
    ]


def member_requests(user_id):
    return [
        ("PATCH", f"/v1/members/{user_id}", {"role": "member"}),
        ("DELETE", f"/v1/members/{user_id}", None),
    ]


@pytest.mark.parametrize("caller", ["admin user", "admin key"])
async def test_another_orgs_key_is_404_on_every_endpoint_and_stays_unchanged(
    client, acme, globex, db, caller
):
    headers = acme.admin if caller == "admin user" else acme.as_key("admin")
    globex_key = (await client.get(f"/v1/keys/{globex.first_key_id}", headers=globex.admin)).json()
    before = await database_state(db)
    for method, path, body in key_requests(globex.first_key_id):
        foreign = await client.request(method, path, json=body, headers=headers)
        unknown = await client.request(
            method,
            path.replace(str(globex.first_key_id), str(uuid.uuid4())),
            json=body,
            headers=headers,
        )
        foreign_body = assert_problem(foreign, 404, "key-not-found")
        unknown_body = assert_problem(unknown, 404, "key-not-found")
        # Nothing tells a foreign id from one that does not exist.
        assert foreign_body["title"] == unknown_body["title"]
        assert str(globex.org_id) not in foreign.text
    assert await database_state(db) == before
    after = (await client.get(f"/v1/keys/{globex.first_key_id}", headers=globex.admin)).json()
    assert after == globex_key


async def test_another_orgs_member_is_404_and_stays_unchanged(client, acme, globex, db):
    before = await database_state(db)
    for method, path, body in member_requests(globex.admin_id):
        assert_problem(
            await client.request(method, path, json=body, headers=acme.admin),
            404,
            "member-not-found",
        )
    assert await database_state(db) == before
    members = (await client.get("/v1/members", headers=globex.admin)).json()
    assert [(m["user_id"], m["role"]) for m in members] == [(str(globex.admin_id), "org_admin")]


async def test_a_member_of_both_orgs_is_managed_per_org(client, acme, globex, sign_up):
    both = await sign_up("Both")
    for tenant in (acme, globex):
        await tenant.join(both.email, role="member")
    promoted = await client.patch(
        f"/v1/members/{both.admin_id}", json={"role": "org_admin"}, headers=acme.admin
    )
    assert promoted.status_code == 200
    globex_roles = {
        m["user_id"]: m["role"]
        for m in (await client.get("/v1/members", headers=globex.admin)).json()
    }
    assert globex_roles[str(both.admin_id)] == "member"


async def test_lists_show_only_the_callers_organisation(client, acme, globex):
    extra = await client.post("/v1/keys", json={"name": "globex extra"}, headers=globex.admin)
    assert extra.status_code == 201
    globex_ids = {str(globex.first_key_id), extra.json()["id"], str(globex.admin_id)}

    member = await acme.member("member")
    for headers in (acme.admin, member, acme.as_key("admin")):
        keys = await client.get("/v1/keys", params={"limit": 100}, headers=headers)
        assert keys.status_code == 200
        assert [item["id"] for item in keys.json()["items"]] == [str(acme.first_key_id)]
        assert not globex_ids & {item["id"] for item in keys.json()["items"]}

    members = (await client.get("/v1/members", headers=acme.admin)).json()
    assert [m["role"] for m in members] == ["org_admin", "member"]
    assert members[0]["user_id"] == str(acme.admin_id)
    assert not globex_ids & {m["user_id"] for m in members}

    organization = (await client.get("/v1/organization", headers=member)).json()
    assert organization["id"] == str(acme.org_id)
    assert organization["name"] == "Acme"


async def test_a_cursor_from_another_org_shows_nothing_of_that_org(client, acme, globex):
    for index in range(3):
        await client.post("/v1/keys", json={"name": f"g{index}"}, headers=globex.admin)
    globex_page = (await client.get("/v1/keys", params={"limit": 1}, headers=globex.admin)).json()
    assert globex_page["next_cursor"]
    acme_page = await client.get(
        "/v1/keys", params={"limit": 100, "cursor": globex_page["next_cursor"]}, headers=acme.admin
    )
    assert acme_page.status_code == 200
    assert {item["id"] for item in acme_page.json()["items"]} <= {str(acme.first_key_id)}


async def test_renaming_changes_only_the_callers_organisation(client, acme, globex):
    renamed = await client.patch("/v1/organization", json={"name": "Acme Corp"}, headers=acme.admin)
    assert renamed.status_code == 200
    assert renamed.json()["id"] == str(acme.org_id)
    globex_org = (await client.get("/v1/organization", headers=globex.admin)).json()
    assert globex_org["name"] == "Globex"


async def test_login_cannot_pick_an_organisation_one_does_not_belong_to(
    client, acme, globex, anonymous
):
    response = await client.post(
        "/v1/auth/login",
        json={
            "email": acme.email,
            "password": STRONG_PASSWORD,
            "organization_id": str(globex.org_id),
        },
        headers=anonymous,
    )
    assert_problem(response, 403, "no-membership")
