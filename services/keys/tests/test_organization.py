"""The caller's organisation: read it, rename it."""

from .conftest import assert_problem, database_state, only, outbox_events


async def test_any_member_reads_the_organisation(client, acme):
    response = await client.get("/v1/organization", headers=await acme.member("support_agent"))
    assert response.status_code == 200
    assert response.json()["id"] == str(acme.org_id)
    assert response.json()["plan"] == "free"
    assert response.json()["suspended"] is False


async def test_rename_writes_an_event(client, acme, db):
    response = await client.patch(
        "/v1/organization", json={"name": "  Acme Corp "}, headers=acme.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Acme Corp"
    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.organization.updated"),
        organization_id=str(acme.org_id),
    )
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "name": "Acme Corp",
        "plan": "free",
        "suspended": False,
    }
    me = (await client.get("/v1/me", headers=acme.admin)).json()
    assert me["memberships"][0]["organization_name"] == "Acme Corp"


async def test_rename_to_the_same_name_changes_nothing(client, acme, db):
    before = await database_state(db)
    response = await client.patch("/v1/organization", json={"name": "Acme"}, headers=acme.admin)
    assert response.status_code == 200
    assert await database_state(db) == before


async def test_only_admins_rename(client, acme, db):
    member = await acme.member("member")
    before = await database_state(db)
    response = await client.patch("/v1/organization", json={"name": "Mine now"}, headers=member)
    assert_problem(response, 403, "forbidden")
    assert await database_state(db) == before
