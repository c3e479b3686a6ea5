"""Services trust only the gateway's signed identity token; roles and scopes decide the rest."""

import uuid

import pytest

from tollgate_shared.identity import IDENTITY_HEADER, Identity, generate_keypair, identity_signer

from .conftest import assert_problem, database_state

# One request per public endpoint; each must refuse a caller without a valid identity.
ENDPOINTS = [
    ("POST", "/v1/signup", {"organization_name": "x", "email": "a@example.com", "password": "p"}),
    ("POST", "/v1/auth/login", {"email": "a@example.com", "password": "p"}),
    ("POST", "/v1/auth/refresh", {"refresh_token": "tgr_" + "a" * 40}),
    ("POST", "/v1/auth/logout", {"refresh_token": "tgr_" + "a" * 40}),
    ("GET", "/v1/me", None),
    ("GET", "/v1/organization", None),
    ("PATCH", "/v1/organization", {"name": "x"}),
    ("GET", "/v1/members", None),
    ("POST", "/v1/members", {"email": "a@example.com"}),
    ("PATCH", "/v1/members/{user_id}", {"role": "member"}),
    ("DELETE", "/v1/members/{user_id}", None),
    ("POST", "/v1/invitations/accept", {"token": "tgi_" + "a" * 40, "password": "p"}),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {"name": "x"}),
    ("GET", "/v1/keys/{key_id}", None),
    ("PATCH", "/v1/keys/{key_id}", {"name": "x"}),
    ("DELETE", "/v1/keys/{key_id}", None),
    ("POST", "/v1/keys/{key_id}/rotate", None),
    ("GET", "/v1/admin/organizations", None),
    ("POST", "/internal/v1/keys/verify", {"secret_hash": "0" * 64}),
    ("POST", "/internal/v1/keys/usage", {"keys": []}),
]


def claims_for(tenant):
    return Identity(
        principal_type="user",
        principal_id=str(tenant.admin_id),
        org_id=tenant.org_id,
        roles=frozenset({"org_admin"}),
    ).to_claims()


def bad_tokens(tenant, identity_keys, access_token):
    claims = claims_for(tenant)
    gateway = identity_signer(identity_keys[0])
    stranger = identity_signer(generate_keypair()[0])
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-jwt",
        "expired": gateway.sign(claims, ttl_seconds=-60),
        "signed with another key": stranger.sign(claims),
        "a user access token": access_token,
        "no principal type": gateway.sign({"sub": str(tenant.admin_id), "org": str(tenant.org_id)}),
        "org not a uuid": gateway.sign({**claims, "org": "acme"}),
        "tampered": _tamper(gateway.sign(claims)),
        "unsigned": _unsigned(claims),
    }


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    return ".".join([header, payload, flipped])


def _unsigned(claims) -> str:
    import base64
    import json
    import time

    def part(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {
        **claims,
        "iss": "tollgate-gateway",
        "aud": "tollgate-services",
        "iat": now,
        "exp": now + 60,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


BAD_TOKEN_NAMES = [
    "missing",
    "empty",
    "garbage",
    "expired",
    "signed with another key",
    "a user access token",
    "no principal type",
    "org not a uuid",
    "tampered",
    "unsigned",
]


@pytest.mark.parametrize("token_name", BAD_TOKEN_NAMES)
async def test_every_endpoint_refuses_a_missing_or_invalid_identity(
    client, acme, identity_keys, db, token_name
):
    token = bad_tokens(acme, identity_keys, acme.signup["tokens"]["access_token"])[token_name]
    headers = {} if token is None else {IDENTITY_HEADER: token}
    before = await database_state(db)
    for method, path, body in ENDPOINTS:
        url = path.format(user_id=acme.admin_id, key_id=acme.first_key_id)
        response = await client.request(method, url, json=body, headers=headers)
        problem = assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer", (method, path)
        assert "gateway" in problem["detail"] or "invalid or expired" in problem["detail"]
    assert await database_state(db) == before


async def test_an_identity_without_an_organisation_cannot_act_in_one(client, acme, mint_identity):
    for principal_type, extra in (
        ("anonymous", {}),
        ("service", {"principal_id": "gateway"}),
        ("user", {"principal_id": str(acme.admin_id), "roles": ("org_admin",)}),
    ):
        headers = mint_identity(principal_type, **extra)
        assert_problem(await client.get("/v1/keys", headers=headers), 401)
        assert_problem(await client.post("/v1/keys", json={"name": "x"}, headers=headers), 401)
        assert_problem(await client.get("/v1/organization", headers=headers), 401)


@pytest.mark.parametrize("role", ["member", "billing_admin", "support_agent"])
async def test_roles_below_org_admin_cannot_change_keys(client, acme, db, role):
    headers = await acme.member(role)
    before = await database_state(db)
    for method, path, body in [
        ("POST", "/v1/keys", {"name": "x"}),
        ("PATCH", f"/v1/keys/{acme.first_key_id}", {"name": "x"}),
        ("DELETE", f"/v1/keys/{acme.first_key_id}", None),
        ("POST", f"/v1/keys/{acme.first_key_id}/rotate", None),
        ("PATCH", "/v1/organization", {"name": "x"}),
    ]:
        problem = assert_problem(
            await client.request(method, path, json=body, headers=headers), 403, "forbidden"
        )
        assert "org_admin" in problem["detail"]
    assert await database_state(db) == before
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200


async def test_an_admin_key_can_manage_keys_and_a_read_key_cannot(client, acme):
    created = await client.post("/v1/keys", json={"name": "x"}, headers=acme.as_key("admin"))
    assert created.status_code == 201
    assert created.json()["name"] == "x"
    assert_problem(
        await client.post("/v1/keys", json={"name": "x"}, headers=acme.as_key("read")), 403
    )
    assert_problem(await client.get("/v1/keys", headers=acme.as_key("read")), 403)


async def test_a_super_admin_lists_every_organisation_and_others_cannot(
    client, acme, globex, mint_identity
):
    super_admin = mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))
    response = await client.get(
        "/v1/admin/organizations", params={"limit": 100}, headers=super_admin
    )
    assert response.status_code == 200, response.text
    names = {item["id"]: item["name"] for item in response.json()["items"]}
    assert names[str(acme.org_id)] == "Acme"
    assert names[str(globex.org_id)] == "Globex"

    assert_problem(await client.get("/v1/admin/organizations", headers=acme.admin), 403)
    assert_problem(await client.get("/v1/admin/organizations", headers=acme.as_key("admin")), 403)
    # super_admin is a user role: a key claiming it is still just a key.
    fake = mint_identity("key", principal_id=str(uuid.uuid4()), roles=("super_admin",))
    assert_problem(await client.get("/v1/admin/organizations", headers=fake), 403)


@pytest.mark.parametrize("principal_id", [None, "not-a-uuid"])
async def test_a_malformed_principal_id_is_401_not_a_crash(
    client, acme, mint_identity, principal_id
):
    user = mint_identity(
        "user", principal_id=principal_id, org_id=acme.org_id, roles=("org_admin",)
    )
    key = mint_identity("key", principal_id=principal_id, org_id=acme.org_id, scopes=("admin",))
    assert_problem(await client.get("/v1/me", headers=user), 401)
    assert_problem(await client.get("/v1/me", headers=key), 401)
    assert_problem(
        await client.post("/v1/members", json={"email": "p@example.com"}, headers=user), 401
    )
