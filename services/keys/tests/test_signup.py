import uuid

import sqlalchemy as sa

from tollgate_shared import api_key_format

from .conftest import (
    STRONG_PASSWORD,
    assert_problem,
    database_state,
    outbox_events,
)


async def test_signup_creates_org_admin_and_first_key(client, acme, db):
    body = acme.signup
    assert body["organization"]["name"] == "Acme"
    assert body["organization"]["plan"] == "free"
    assert body["user"]["email"] == acme.email
    assert body["user"]["is_super_admin"] is False
    assert "password" not in str(body["user"]).lower()
    key = body["api_key"]["key"]
    assert api_key_format.is_well_formed(key)
    assert key.startswith("tg_live_")
    assert body["api_key"]["scopes"] == ["read", "write"]
    assert body["api_key"]["status"] == "active"
    assert body["api_key"]["masked_key"] == f"{key[:12]}…{key[-4:]}"
    assert body["tokens"]["token_type"] == "bearer"

    me = await client.get("/v1/me", headers=acme.admin)
    assert me.status_code == 200
    assert me.json()["user"]["id"] == str(acme.admin_id)
    assert me.json()["memberships"] == [
        {"organization_id": str(acme.org_id), "organization_name": "Acme", "role": "org_admin"}
    ]
    keys = await client.get("/v1/keys", headers=acme.admin)
    assert [item["id"] for item in keys.json()["items"]] == [str(acme.first_key_id)]


async def test_signup_access_token_verifies_and_carries_org_and_roles(acme, access_tokens):
    tokens = acme.signup["tokens"]
    claims = access_tokens.verify(tokens["access_token"])
    assert claims["sub"] == str(acme.admin_id)
    assert claims["org"] == str(acme.org_id)
    assert claims["roles"] == ["org_admin"]
    assert claims["plan"] == "free"
    assert claims["exp"] - claims["iat"] == tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("tgr_")


async def test_signup_writes_one_event_of_each_kind_with_the_facts(acme, db):
    events = await outbox_events(db, org_id=acme.org_id)
    assert sorted(event["type"] for event in events) == [
        "tollgate.keys.key.created",
        "tollgate.keys.member.added",
        "tollgate.keys.organization.created",
        "tollgate.keys.user.created",
    ]
    assert all(event["orgid"] == str(acme.org_id) for event in events)

    by_type = {event["type"]: event for event in events}
    assert by_type["tollgate.keys.organization.created"]["data"] == {
        "organization_id": str(acme.org_id),
        "name": "Acme",
        "plan": "free",
        "suspended": False,
        "created_by_user_id": str(acme.admin_id),
    }
    assert by_type["tollgate.keys.user.created"]["data"] == {
        "user_id": str(acme.admin_id),
        "email": acme.email,
        "full_name": None,
        "organization_id": str(acme.org_id),
    }
    assert by_type["tollgate.keys.member.added"]["data"] == {
        "organization_id": str(acme.org_id),
        "user_id": str(acme.admin_id),
        "email": acme.email,
        "role": "org_admin",
    }
    assert by_type["tollgate.keys.key.created"]["data"] == {
        "key_id": str(acme.first_key_id),
        "organization_id": str(acme.org_id),
        "name": "Default key",
        "environment": "live",
        "scopes": ["read", "write"],
        "rate_limit": None,
        "expires_at": None,
    }
    # The secret itself never leaves in an event.
    assert acme.first_key not in str(events)


async def test_signup_stores_only_hashes_of_password_key_and_refresh_token(acme, db):
    secrets = [STRONG_PASSWORD, acme.first_key, acme.signup["tokens"]["refresh_token"]]
    async with db() as session:
        dump = (
            await session.execute(
                sa.text(
                    "SELECT concat_ws('|', (SELECT string_agg(t::text, '|') FROM keys.users t),"
                    " (SELECT string_agg(t::text, '|') FROM keys.api_key_secrets t),"
                    " (SELECT string_agg(t::text, '|') FROM keys.refresh_tokens t),"
                    " (SELECT string_agg(t::text, '|') FROM keys.outbox t))"
                )
            )
        ).scalar_one()
        stored_hash = (
            await session.execute(
                sa.text("SELECT secret_hash FROM keys.api_key_secrets WHERE key_id = :id"),
                {"id": acme.first_key_id},
            )
        ).scalar_one()
    assert all(secret not in dump for secret in secrets)
    assert stored_hash == api_key_format.hash_key(acme.first_key)
    assert "$argon2id$" in dump


async def test_signup_keeps_full_name_and_lowercases_email(client, anonymous, db):
    response = await client.post(
        "/v1/signup",
        json={
            "organization_name": "  Initech  ",
            "email": "Peter.Gibbons@Example.COM",
            "password": STRONG_PASSWORD,
            "full_name": "Peter Gibbons",
        },
        headers=anonymous,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["organization"]["name"] == "Initech"
    assert body["user"]["email"] == "peter.gibbons@example.com"
    assert body["user"]["full_name"] == "Peter Gibbons"
    events = await outbox_events(
        db, org_id=uuid.UUID(body["organization"]["id"]), type_="tollgate.keys.user.created"
    )
    assert [event["data"]["full_name"] for event in events] == ["Peter Gibbons"]


async def test_signup_with_a_registered_email_is_409_and_changes_nothing(
    client, acme, anonymous, db
):
    before = await database_state(db)
    response = await client.post(
        "/v1/signup",
        json={
            "organization_name": "Acme again",
            "email": acme.email.upper(),
            "password": STRONG_PASSWORD,
        },
        headers=anonymous,
    )
    assert_problem(response, 409, "email-taken")
    assert await database_state(db) == before


async def test_password_with_surrounding_spaces_is_refused_not_silently_trimmed(
    client, anonymous, db
):
    # Trimming would store a password the user never typed: login with it would then fail.
    before = await database_state(db)
    response = await client.post(
        "/v1/signup",
        json={
            "organization_name": "Spaces",
            "email": "spaces@example.com",
            "password": f"  {STRONG_PASSWORD}  ",
        },
        headers=anonymous,
    )
    body = assert_problem(response, 422, "weak-password")
    assert body["errors"][0]["loc"] == ["body", "password"]
    assert await database_state(db) == before


async def test_signup_then_login_with_the_same_password(client, sign_up, anonymous):
    password = "Tr0ub4dor & 3 horses"
    tenant = await sign_up("Login Co", email="login-co@example.com", password=password)
    response = await client.post(
        "/v1/auth/login",
        json={"email": "login-co@example.com", "password": password},
        headers=anonymous,
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"] != tenant.signup["tokens"]["access_token"]
