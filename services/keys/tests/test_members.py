"""Members: invite, accept, change role, remove, and the organisation's last admin."""

import uuid

import sqlalchemy as sa

from .conftest import (
    INVITEE_PASSWORD,
    STRONG_PASSWORD,
    TABLES,
    assert_problem,
    database_state,
    only,
    outbox_events,
)

MEMBER_ADDED = "tollgate.keys.member.added"


async def test_list_members_shows_the_people_of_the_organisation(client, acme, sign_up):
    other = await sign_up("Other")
    await acme.join(other.email, role="support_agent")
    as_agent = acme.as_user("support_agent", user_id=other.admin_id)
    response = await client.get("/v1/members", headers=as_agent)
    assert response.status_code == 200
    members = {member["user_id"]: member for member in response.json()}
    assert set(members) == {str(acme.admin_id), str(other.admin_id)}
    assert members[str(acme.admin_id)]["role"] == "org_admin"
    assert members[str(other.admin_id)]["role"] == "support_agent"
    assert members[str(other.admin_id)]["email"] == other.email


async def test_an_existing_account_is_invited_not_added(client, acme, sign_up, anonymous, db):
    """Joining takes the invitee's consent, whether or not the email has an account."""
    other = await sign_up("Other")
    invited = await acme.invite(other.email.upper(), role="billing_admin")
    assert invited["status"] == "invited"
    assert invited["invitation"]["email"] == other.email
    assert invited["invitation"]["role"] == "billing_admin"
    assert invited["invitation_token"].startswith("tgi_")
    listed = (await client.get("/v1/members", headers=acme.admin)).json()
    assert str(other.admin_id) not in {m["user_id"] for m in listed}
    added = await outbox_events(db, org_id=acme.org_id, type_=MEMBER_ADDED)
    assert str(other.admin_id) not in {event["data"]["user_id"] for event in added}

    accepted = await client.post(
        "/v1/invitations/accept",
        json={"token": invited["invitation_token"], "password": STRONG_PASSWORD},
        headers=anonymous,
    )
    assert accepted.status_code == 200, accepted.text
    listed = (await client.get("/v1/members", headers=acme.admin)).json()
    assert {m["user_id"]: m["role"] for m in listed}[str(other.admin_id)] == "billing_admin"
    event = only(
        await outbox_events(db, org_id=acme.org_id, type_=MEMBER_ADDED),
        user_id=str(other.admin_id),
    )
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "user_id": str(other.admin_id),
        "email": other.email,
        "role": "billing_admin",
    }


async def test_the_answer_does_not_tell_whether_the_email_has_an_account(client, acme, sign_up, db):
    other = await sign_up("Other")
    before = await database_state(db)
    with_account = await acme.invite(other.email)
    between = await database_state(db)
    without_account = await acme.invite("no-account-yet@example.com")
    after = await database_state(db)

    assert (
        with_account.keys()
        == without_account.keys()
        == {
            "status",
            "invitation",
            "invitation_token",
        }
    )
    assert with_account["status"] == without_account["status"] == "invited"
    assert with_account["invitation"].keys() == without_account["invitation"].keys()
    # Both wrote the same kinds of rows: an invitation and its event.
    for first, second in ((before, between), (between, after)):
        changed = {table for table in TABLES if first[table] != second[table]}
        assert changed == {"invitations", "outbox"}
        assert all(second[table][0] - first[table][0] == 1 for table in changed)


async def test_inviting_a_member_again_is_409_and_changes_nothing(client, acme, sign_up, db):
    other = await sign_up("Other")
    await acme.join(other.email)
    before = await database_state(db)
    for email in (other.email, acme.email.upper()):
        response = await client.post("/v1/members", json={"email": email}, headers=acme.admin)
        assert_problem(response, 409, "already-member")
    assert await database_state(db) == before


async def test_invitation_then_accept_creates_the_user_and_signs_them_in(
    client, acme, anonymous, db, access_tokens
):
    invited = await acme.invite("New.Person@Example.com", role="support_agent")
    assert invited["status"] == "invited"
    assert invited["invitation"]["email"] == "new.person@example.com"
    assert invited["invitation"]["role"] == "support_agent"
    token = invited["invitation_token"]
    assert token.startswith("tgi_")

    invitation_event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.member.invited"),
        email="new.person@example.com",
    )
    assert invitation_event["data"]["invitation_id"] == invited["invitation"]["id"]
    assert invitation_event["data"]["role"] == "support_agent"
    assert invitation_event["data"]["organization_id"] == str(acme.org_id)
    assert token not in str(invitation_event)

    accepted = await client.post(
        "/v1/invitations/accept",
        json={"token": token, "password": INVITEE_PASSWORD, "full_name": "New Person"},
        headers=anonymous,
    )
    assert accepted.status_code == 200, accepted.text
    claims = access_tokens.verify(accepted.json()["access_token"])
    assert claims["org"] == str(acme.org_id)
    assert claims["roles"] == ["support_agent"]
    new_user_id = claims["sub"]

    members = (await client.get("/v1/members", headers=acme.admin)).json()
    assert {m["email"]: m["role"] for m in members}["new.person@example.com"] == "support_agent"

    user_event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.user.created"),
        user_id=new_user_id,
    )
    assert user_event["data"] == {
        "user_id": new_user_id,
        "email": "new.person@example.com",
        "full_name": "New Person",
        "organization_id": str(acme.org_id),
    }
    member_event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.member.added"),
        user_id=new_user_id,
    )
    assert member_event["data"]["role"] == "support_agent"

    login = await client.post(
        "/v1/auth/login",
        json={"email": "new.person@example.com", "password": INVITEE_PASSWORD},
        headers=anonymous,
    )
    assert login.status_code == 200


async def test_an_invitation_is_used_up_by_accepting_it(client, acme, anonymous, db):
    token = (await acme.invite("once@example.com"))["invitation_token"]
    body = {"token": token, "password": INVITEE_PASSWORD}
    first = await client.post("/v1/invitations/accept", json=body, headers=anonymous)
    assert first.status_code == 200
    before = await database_state(db)
    second = await client.post("/v1/invitations/accept", json=body, headers=anonymous)
    assert_problem(second, 404, "invitation-invalid")
    assert await database_state(db) == before


async def test_unknown_and_expired_invitations_are_404(client, acme, anonymous, db):
    token = (await acme.invite("late@example.com"))["invitation_token"]
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.invitations SET expires_at = now() - interval '1 second'"
                " WHERE email = 'late@example.com'"
            )
        )
    before = await database_state(db)
    for candidate in (token, "tgi_" + "n" * 43):
        response = await client.post(
            "/v1/invitations/accept",
            json={"token": candidate, "password": INVITEE_PASSWORD},
            headers=anonymous,
        )
        assert_problem(response, 404, "invitation-invalid")
    assert await database_state(db) == before


async def test_accepting_with_a_weak_password_is_422_and_keeps_the_invitation(
    client, acme, anonymous, db
):
    token = (await acme.invite("weak@example.com"))["invitation_token"]
    before = await database_state(db)
    weak = await client.post(
        "/v1/invitations/accept", json={"token": token, "password": "short"}, headers=anonymous
    )
    assert_problem(weak, 422, "weak-password")
    assert await database_state(db) == before
    strong = await client.post(
        "/v1/invitations/accept",
        json={"token": token, "password": INVITEE_PASSWORD},
        headers=anonymous,
    )
    assert strong.status_code == 200


async def test_an_existing_account_accepts_with_its_own_password(
    client, acme, globex, anonymous, db, access_tokens
):
    # The email got an account after the invitation was sent.
    invited = await client.post(
        "/v1/members", json={"email": "later@example.com"}, headers=globex.admin
    )
    token = invited.json()["invitation_token"]
    await client.post(
        "/v1/signup",
        json={
            "organization_name": "Later",
            "email": "later@example.com",
            "password": STRONG_PASSWORD,
        },
        headers=anonymous,
    )
    before = await database_state(db)
    wrong = await client.post(
        "/v1/invitations/accept",
        json={"token": token, "password": "some other password"},
        headers=anonymous,
    )
    assert_problem(wrong, 401, "invalid-credentials")
    assert await database_state(db) == before

    right = await client.post(
        "/v1/invitations/accept",
        json={"token": token, "password": STRONG_PASSWORD},
        headers=anonymous,
    )
    assert right.status_code == 200, right.text
    assert access_tokens.verify(right.json()["access_token"])["org"] == str(globex.org_id)


async def test_change_role_writes_an_event_with_the_previous_role(client, acme, sign_up, db):
    other = await sign_up("Other")
    await acme.join(other.email, role="member")
    response = await client.patch(
        f"/v1/members/{other.admin_id}", json={"role": "billing_admin"}, headers=acme.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "billing_admin"
    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.member.role_changed"),
        user_id=str(other.admin_id),
    )
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "user_id": str(other.admin_id),
        "email": other.email,
        "role": "billing_admin",
        "previous_role": "member",
    }
    listed = (await client.get("/v1/members", headers=acme.admin)).json()
    assert {m["user_id"]: m["role"] for m in listed}[str(other.admin_id)] == "billing_admin"


async def test_setting_the_same_role_changes_nothing(client, acme, db):
    before = await database_state(db)
    response = await client.patch(
        f"/v1/members/{acme.admin_id}", json={"role": "org_admin"}, headers=acme.admin
    )
    assert response.status_code == 200
    assert response.json()["role"] == "org_admin"
    assert await database_state(db) == before


async def test_the_last_admin_can_be_neither_demoted_nor_removed(client, acme, db):
    before = await database_state(db)
    demote = await client.patch(
        f"/v1/members/{acme.admin_id}", json={"role": "member"}, headers=acme.admin
    )
    assert_problem(demote, 409, "last-admin")
    remove = await client.delete(f"/v1/members/{acme.admin_id}", headers=acme.admin)
    assert_problem(remove, 409, "last-admin")
    assert await database_state(db) == before


async def test_with_a_second_admin_the_first_can_step_down(client, acme, sign_up):
    other = await sign_up("Other")
    await acme.join(other.email, role="org_admin")
    demote = await client.patch(
        f"/v1/members/{acme.admin_id}", json={"role": "member"}, headers=acme.admin
    )
    assert demote.status_code == 200, demote.text
    # Now the other one is the last admin.
    last = await client.delete(
        f"/v1/members/{other.admin_id}", headers=acme.as_user(user_id=other.admin_id)
    )
    assert_problem(last, 409, "last-admin")


async def test_remove_member_writes_an_event_and_ends_their_access(
    client, acme, sign_up, anonymous, db
):
    other = await sign_up("Other")
    await acme.join(other.email, role="support_agent")
    response = await client.delete(f"/v1/members/{other.admin_id}", headers=acme.admin)
    assert response.status_code == 204
    assert response.content == b""

    event = only(
        await outbox_events(db, org_id=acme.org_id, type_="tollgate.keys.member.removed"),
        user_id=str(other.admin_id),
    )
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "user_id": str(other.admin_id),
        "email": other.email,
        "role": "support_agent",
    }
    listed = (await client.get("/v1/members", headers=acme.admin)).json()
    assert str(other.admin_id) not in {m["user_id"] for m in listed}
    login = await client.post(
        "/v1/auth/login",
        json={
            "email": other.email,
            "password": STRONG_PASSWORD,
            "organization_id": str(acme.org_id),
        },
        headers=anonymous,
    )
    assert_problem(login, 403, "no-membership")
    again = await client.delete(f"/v1/members/{other.admin_id}", headers=acme.admin)
    assert_problem(again, 404, "member-not-found")


async def test_unknown_member_is_404(client, acme):
    missing = uuid.uuid4()
    assert_problem(
        await client.patch(f"/v1/members/{missing}", json={"role": "member"}, headers=acme.admin),
        404,
        "member-not-found",
    )
    assert_problem(
        await client.delete(f"/v1/members/{missing}", headers=acme.admin), 404, "member-not-found"
    )


async def test_only_admins_manage_members(client, acme, sign_up, db):
    other = await sign_up("Other")
    await acme.join(other.email, role="member")
    as_member = acme.as_user("member", user_id=other.admin_id)
    before = await database_state(db)
    assert_problem(
        await client.post("/v1/members", json={"email": "x@example.com"}, headers=as_member), 403
    )
    assert_problem(
        await client.patch(
            f"/v1/members/{other.admin_id}", json={"role": "org_admin"}, headers=as_member
        ),
        403,
    )
    assert_problem(await client.delete(f"/v1/members/{acme.admin_id}", headers=as_member), 403)
    assert await database_state(db) == before


async def test_an_admin_key_lists_members_and_other_keys_cannot(client, acme, sign_up):
    """Listing follows the rule for listing keys: any member, or a key with the admin scope."""
    other = await sign_up("Other")
    await acme.join(other.email, role="billing_admin")
    response = await client.get("/v1/members", headers=acme.as_key("admin"))
    assert response.status_code == 200, response.text
    assert {m["user_id"]: m["role"] for m in response.json()} == {
        str(acme.admin_id): "org_admin",
        str(other.admin_id): "billing_admin",
    }
    for scopes in (("read",), ("write",), ("read", "write")):
        refused = await client.get("/v1/members", headers=acme.as_key(*scopes))
        assert "admin scope" in assert_problem(refused, 403, "forbidden")["detail"]


async def test_an_admin_key_can_invite(client, acme, db):
    response = await client.post(
        "/v1/members", json={"email": "by-key@example.com"}, headers=acme.as_key("admin")
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "invited"
    async with db() as session:
        invited_by = (
            await session.execute(
                sa.text("SELECT invited_by FROM keys.invitations WHERE email = :email"),
                {"email": "by-key@example.com"},
            )
        ).scalar_one()
    assert invited_by is None
