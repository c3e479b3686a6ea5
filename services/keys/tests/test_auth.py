"""Sign-in: login, refresh (rotating, with reuse detection), logout, and who-am-I."""

import uuid

import pytest
import sqlalchemy as sa

from .conftest import STRONG_PASSWORD, assert_problem, database_state


async def login(client, anonymous, email, password=STRONG_PASSWORD, **extra):
    return await client.post(
        "/v1/auth/login", json={"email": email, "password": password, **extra}, headers=anonymous
    )


async def test_login_returns_an_access_token_the_gateway_can_verify(
    client, acme, anonymous, access_tokens
):
    response = await login(client, anonymous, acme.email.upper())
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = access_tokens.verify(tokens["access_token"])
    assert claims["sub"] == str(acme.admin_id)
    assert claims["org"] == str(acme.org_id)
    assert claims["roles"] == ["org_admin"]
    assert claims["plan"] == "free"
    assert claims["suspended"] is False
    assert claims["iss"] == "tollgate-keys"
    assert claims["aud"] == "tollgate-gateway"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("tgr_")
    assert tokens["refresh_token"] != acme.signup["tokens"]["refresh_token"]


@pytest.mark.parametrize("wrong", ["password", "email"])
async def test_wrong_password_and_unknown_email_look_the_same(client, acme, anonymous, db, wrong):
    before = await database_state(db)
    email = acme.email if wrong == "password" else "nobody-here@example.com"
    password = "not the password at all" if wrong == "password" else STRONG_PASSWORD
    body = assert_problem(await login(client, anonymous, email, password), 401)
    assert body["type"].endswith("/invalid-credentials")
    assert body["title"] == "Invalid email or password"
    assert body["detail"] == "Invalid email or password"
    assert await database_state(db) == before


async def test_login_chooses_the_organisation_and_its_role(
    client, acme, globex, anonymous, access_tokens
):
    await globex.join(acme.email, role="billing_admin")

    default = await login(client, anonymous, acme.email)
    assert access_tokens.verify(default.json()["access_token"])["org"] == str(acme.org_id)

    chosen = await login(client, anonymous, acme.email, organization_id=str(globex.org_id))
    assert chosen.status_code == 200, chosen.text
    claims = access_tokens.verify(chosen.json()["access_token"])
    assert claims["org"] == str(globex.org_id)
    assert claims["roles"] == ["billing_admin"]


async def test_login_into_an_organisation_of_which_one_is_not_a_member_is_refused(
    client, acme, globex, anonymous
):
    response = await login(client, anonymous, acme.email, organization_id=str(globex.org_id))
    assert_problem(response, 403, "no-membership")
    unknown = await login(client, anonymous, acme.email, organization_id=str(uuid.uuid4()))
    assert unknown.json()["detail"] == response.json()["detail"]


async def test_refresh_gives_a_new_pair_and_uses_the_old_token_up(
    client, acme, anonymous, access_tokens
):
    first = acme.signup["tokens"]["refresh_token"]
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": first}, headers=anonymous
    )
    assert refreshed.status_code == 200, refreshed.text
    pair = refreshed.json()
    assert pair["refresh_token"] != first
    claims = access_tokens.verify(pair["access_token"])
    assert (claims["sub"], claims["org"], claims["roles"]) == (
        str(acme.admin_id),
        str(acme.org_id),
        ["org_admin"],
    )

    again = await client.post("/v1/auth/refresh", json={"refresh_token": first}, headers=anonymous)
    assert_problem(again, 401, "invalid-refresh-token")


async def test_reusing_a_refresh_token_revokes_the_whole_family(client, acme, anonymous):
    """A used token presented again means it was stolen: the thief's newer token dies too."""
    first = acme.signup["tokens"]["refresh_token"]
    second = (
        await client.post("/v1/auth/refresh", json={"refresh_token": first}, headers=anonymous)
    ).json()["refresh_token"]

    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": first}, headers=anonymous)
    assert_problem(reuse, 401, "invalid-refresh-token")

    after = await client.post("/v1/auth/refresh", json={"refresh_token": second}, headers=anonymous)
    assert_problem(after, 401, "invalid-refresh-token")


async def test_expired_refresh_token_is_refused(client, acme, anonymous, db):
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.refresh_tokens SET expires_at = now() - interval '1 second'"
                " WHERE user_id = :user_id"
            ),
            {"user_id": acme.admin_id},
        )
    response = await client.post(
        "/v1/auth/refresh",
        json={"refresh_token": acme.signup["tokens"]["refresh_token"]},
        headers=anonymous,
    )
    assert_problem(response, 401, "invalid-refresh-token")


async def test_unknown_refresh_token_is_refused_and_changes_nothing(client, acme, anonymous, db):
    before = await database_state(db)
    response = await client.post(
        "/v1/auth/refresh", json={"refresh_token": "tgr_" + "x" * 43}, headers=anonymous
    )
    assert_problem(response, 401, "invalid-refresh-token")
    assert await database_state(db) == before


async def test_logout_ends_the_refresh_token_and_is_idempotent(client, acme, anonymous):
    token = acme.signup["tokens"]["refresh_token"]
    for _ in range(2):
        response = await client.post(
            "/v1/auth/logout", json={"refresh_token": token}, headers=anonymous
        )
        assert response.status_code == 204
        assert response.content == b""
    refused = await client.post(
        "/v1/auth/refresh", json={"refresh_token": token}, headers=anonymous
    )
    assert_problem(refused, 401, "invalid-refresh-token")
    # Signing in again still works: logout ends one session, not the account.
    assert (await login(client, anonymous, acme.email)).status_code == 200


async def test_refresh_after_removal_from_the_organisation_is_refused(
    client, acme, anonymous, sign_up
):
    other = await sign_up("Other")
    await acme.join(other.email, role="member")
    pair = (await login(client, anonymous, other.email, organization_id=str(acme.org_id))).json()
    removed = await client.delete(f"/v1/members/{other.admin_id}", headers=acme.admin)
    assert removed.status_code == 204
    response = await client.post(
        "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}, headers=anonymous
    )
    assert_problem(response, 403, "no-membership")


async def test_me_as_a_user(client, acme):
    response = await client.get("/v1/me", headers=acme.admin)
    assert response.status_code == 200
    me = response.json()
    assert me["principal_type"] == "user"
    assert me["user"]["email"] == acme.email
    assert me["organization_id"] == str(acme.org_id)
    assert me["roles"] == ["org_admin"]
    assert me["key_id"] is None
    assert [m["organization_id"] for m in me["memberships"]] == [str(acme.org_id)]


async def test_me_as_an_api_key(client, acme):
    response = await client.get("/v1/me", headers=acme.as_key("read", "write"))
    assert response.status_code == 200
    me = response.json()
    assert me["principal_type"] == "key"
    assert me["key_id"] == str(acme.first_key_id)
    assert me["organization_id"] == str(acme.org_id)
    assert me["scopes"] == ["read", "write"]
    assert me["user"] is None
    assert me["memberships"] == []


async def test_me_for_a_user_that_does_not_exist_is_401(client, acme):
    ghost = acme.as_user("org_admin", user_id=uuid.uuid4())
    assert_problem(await client.get("/v1/me", headers=ghost), 401)


@pytest.mark.parametrize("principal", ["service", "anonymous"])
async def test_me_needs_a_user_or_a_key(client, mint_identity, principal):
    assert_problem(await client.get("/v1/me", headers=mint_identity(principal)), 401)
