from .conftest import bearer


async def _key(http, gateway, account, **body):
    admin = bearer(account["tokens"]["access_token"])
    created = await http.post(f"{gateway.url}/v1/keys", json={"name": "k", **body}, headers=admin)
    assert created.status_code == 201, created.text
    return created.json()["key"]


async def test_read_only_key_cannot_write(http, gateway, sign_up):
    account = await sign_up()
    key = await _key(http, gateway, account, scopes=["read"])
    assert (await http.get(f"{gateway.url}/api/demo/echo", headers=bearer(key))).status_code == 200
    response = await http.post(f"{gateway.url}/api/demo/echo", headers=bearer(key), json={})
    assert response.status_code == 403
    problem = response.json()
    assert problem["type"].endswith("/insufficient-scope")
    assert problem["required_scopes"] == ["write"]


async def test_route_scopes_override_method_defaults(http, gateway, sign_up):
    account = await sign_up()
    plain = account["api_key"]["key"]  # read + write
    admin_key = await _key(http, gateway, account, scopes=["admin"])
    denied = await http.get(f"{gateway.url}/api/demo/admin/x", headers=bearer(plain))
    assert denied.status_code == 403
    assert denied.json()["required_scopes"] == ["admin"]
    allowed = await http.get(f"{gateway.url}/api/demo/admin/x", headers=bearer(admin_key))
    assert allowed.status_code == 200
    assert allowed.json()["path"] == "/echo/x"


async def test_platform_admin_routes_need_super_admin(http, gateway, sign_up):
    account = await sign_up()
    token = account["tokens"]["access_token"]
    response = await http.get(f"{gateway.url}/v1/admin/organizations", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["required_roles"] == ["super_admin"]
    with_key = await http.get(
        f"{gateway.url}/v1/admin/organizations", headers=bearer(account["api_key"]["key"])
    )
    assert with_key.status_code == 401


async def test_method_not_allowed_on_route(http, gateway, sign_up):
    account = await sign_up()
    response = await http.post(
        f"{gateway.url}/api/readonly/echo", headers=bearer(account["api_key"]["key"])
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_public_routes_need_no_credential_and_ignore_one(http, gateway):
    response = await http.post(
        f"{gateway.url}/v1/auth/login",
        json={"email": "nobody@example.com", "password": "wrong password!"},
        headers=bearer("tg_live_garbage"),
    )
    assert response.status_code == 401
    assert response.json()["type"].endswith("/invalid-credentials")
