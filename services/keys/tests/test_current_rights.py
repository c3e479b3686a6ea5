"""A user's rights come from their membership now, not from a token that may be 15 minutes old."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from .conftest import assert_problem, database_state


def org_requests(tenant):
    """Every organisation endpoint, as (method, path, body)."""
    return [
        ("GET", "/v1/organization", None),
        ("PATCH", "/v1/organization", {"name": "Taken over"}),
        ("GET", "/v1/members", None),
        ("POST", "/v1/members", {"email": "friend@example.com", "role": "org_admin"}),
        ("PATCH", f"/v1/members/{tenant.admin_id}", {"role": "member"}),
        ("DELETE", f"/v1/members/{tenant.admin_id}", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "backdoor"}),
        ("GET", f"/v1/keys/{tenant.first_key_id}", None),
        ("PATCH", f"/v1/keys/{tenant.first_key_id}", {"name": "x"}),
        ("DELETE", f"/v1/keys/{tenant.first_key_id}", None),
        ("POST", f"/v1/keys/{tenant.first_key_id}/rotate", None),
    ]


async def test_a_removed_admin_loses_every_right_at_once(client, acme, sign_up, db):
    other = await sign_up("Other")
    await acme.join(other.email, role="org_admin")
    # The token the gateway still forwards for the next 15 minutes says org_admin.
    stale = acme.as_user("org_admin", user_id=other.admin_id)
    assert (await client.get("/v1/members", headers=stale)).status_code == 200
    removed = await client.delete(f"/v1/members/{other.admin_id}", headers=acme.admin)
    assert removed.status_code == 204

    before = await database_state(db)
    for method, path, body in org_requests(acme):
        response = await client.request(method, path, json=body, headers=stale)
        assert_problem(response, 403, "no-membership")
    assert await database_state(db) == before


async def test_a_demoted_admin_can_still_read_but_no_longer_manage(client, acme, sign_up, db):
    other = await sign_up("Other")
    await acme.join(other.email, role="org_admin")
    demoted = await client.patch(
        f"/v1/members/{other.admin_id}", json={"role": "member"}, headers=acme.admin
    )
    assert demoted.status_code == 200, demoted.text
    stale = acme.as_user("org_admin", user_id=other.admin_id)

    before = await database_state(db)
    for method, path, body in org_requests(acme):
        response = await client.request(method, path, json=body, headers=stale)
        if method == "GET":
            assert response.status_code == 200, (path, response.text)
        else:
            assert_problem(response, 403, "forbidden")
    assert await database_state(db) == before


async def test_a_promoted_member_is_an_admin_before_their_token_says_so(client, acme, sign_up):
    other = await sign_up("Other")
    await acme.join(other.email, role="member")
    promoted = await client.patch(
        f"/v1/members/{other.admin_id}", json={"role": "org_admin"}, headers=acme.admin
    )
    assert promoted.status_code == 200, promoted.text
    created = await client.post(
        "/v1/keys",
        json={"name": "by the new admin"},
        headers=acme.as_user("member", other.admin_id),
    )
    assert created.status_code == 201, created.text


async def test_a_token_naming_an_organisation_the_user_is_not_in_is_403(client, acme, globex, db):
    before = await database_state(db)
    for user_id in (globex.admin_id, uuid.uuid4()):
        claims_admin = acme.as_user("org_admin", user_id=user_id)
        for method, path, body in org_requests(acme):
            response = await client.request(method, path, json=body, headers=claims_admin)
            assert_problem(response, 403, "no-membership")
    assert await database_state(db) == before


async def test_keys_and_super_admins_are_not_looked_up_as_members(client, acme, mint_identity):
    # An API key has no membership: its scopes decide.
    created = await client.post("/v1/keys", json={"name": "k"}, headers=acme.as_key("admin"))
    assert created.status_code == 201, created.text
    # The platform super admin acts in any organisation without being a member.
    super_admin = mint_identity(
        "user", principal_id=str(uuid.uuid4()), org_id=acme.org_id, roles=("super_admin",)
    )
    organization = await client.get("/v1/organization", headers=super_admin)
    assert organization.status_code == 200, organization.text
    assert organization.json()["id"] == str(acme.org_id)


@contextmanager
def membership_queries(keys_app) -> Iterator[list[str]]:
    """The SQL statements reading keys.memberships while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "keys.memberships" in statement:
            seen.append(statement)

    engine = keys_app.state.runtime.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


async def test_the_membership_is_read_once_per_request_in_its_session(client, keys_app, acme):
    """Changing a key needs two rights (read the key, be an admin): one query in the request's
    one session answers both."""
    sessionmaker = keys_app.state.sessionmaker
    opened = []

    def counting_sessionmaker():
        opened.append(1)
        return sessionmaker()

    keys_app.state.sessionmaker = counting_sessionmaker
    try:
        with membership_queries(keys_app) as seen:
            response = await client.patch(
                f"/v1/keys/{acme.first_key_id}", json={"name": "Renamed"}, headers=acme.admin
            )
    finally:
        keys_app.state.sessionmaker = sessionmaker
    assert response.status_code == 200, response.text
    assert len(seen) == 1, seen
    assert len(opened) == 1
