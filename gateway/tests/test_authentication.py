import asyncio
from datetime import UTC, datetime, timedelta

from tollgate_shared import api_key_format
from tollgate_shared.identity import TokenSigner, generate_keypair

from .conftest import bearer


async def test_valid_key_reaches_upstream_with_identity(http, gateway, sign_up):
    account = await sign_up()
    response = await http.get(
        f"{gateway.url}/api/demo/echo/path?x=1", headers=bearer(account["api_key"]["key"])
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["path"] == "/echo/path"
    assert echo["query"] == "x=1"
    assert echo["identity"]["ptype"] == "key"
    assert echo["identity"]["org"] == account["organization"]["id"]
    assert echo["identity"]["scopes"] == ["read", "write"]
    assert echo["headers"]["x-request-id"] == response.headers["x-request-id"]
    assert "rid" not in echo["identity"]  # the token is reused across requests (ADR 0001)
    assert "authorization" not in echo["headers"]


async def test_x_api_key_header_is_accepted(http, gateway, sign_up):
    account = await sign_up()
    response = await http.get(
        f"{gateway.url}/api/demo/hello", headers={"X-API-Key": account["api_key"]["key"]}
    )
    assert response.status_code == 200
    assert response.json()["organization_id"] == account["organization"]["id"]


async def test_user_access_token_is_accepted(http, gateway, sign_up):
    account = await sign_up()
    token = account["tokens"]["access_token"]
    response = await http.get(f"{gateway.url}/v1/keys", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert [key["id"] for key in response.json()["items"]] == [account["api_key"]["id"]]


async def test_missing_credential_is_401_problem(http, gateway):
    response = await http.get(f"{gateway.url}/api/demo/hello")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_malformed_key_is_refused_without_lookup(http, gateway, monkeypatch):
    lookups = []
    authenticator = gateway._server.config.app.state.gateway.authenticator  # type: ignore[attr-defined]
    monkeypatch.setattr(authenticator.keys, "verify", lambda *a: lookups.append(a))
    good = api_key_format.generate_key()
    for bad in (
        "tg_live_short",
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        "tg_live_" + "x" * 200,
    ):
        response = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(bad))
        assert response.status_code == 401
        assert response.json()["type"].endswith("/invalid-api-key")
    assert lookups == []


async def test_a_burst_with_an_uncached_key_asks_keys_once(http, gateway, sign_up, monkeypatch):
    key = (await sign_up())["api_key"]["key"]
    authenticator = gateway._server.config.app.state.gateway.authenticator  # type: ignore[attr-defined]
    verify, calls = authenticator.keys.verify, []

    async def slow_counted_verify(secret_hash):
        calls.append(secret_hash)
        await asyncio.sleep(0.2)  # long enough for the whole burst to arrive meanwhile
        return await verify(secret_hash)

    monkeypatch.setattr(authenticator.keys, "verify", slow_counted_verify)
    answers = await asyncio.gather(
        *(http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key)) for _ in range(20))
    )
    assert [answer.status_code for answer in answers] == [200] * 20
    assert len(calls) == 1


async def test_unknown_well_formed_key_is_401(http, gateway):
    response = await http.get(
        f"{gateway.url}/api/demo/hello", headers=bearer(api_key_format.generate_key())
    )
    assert response.status_code == 401
    assert "not valid" in response.json()["detail"]


async def test_forged_and_expired_user_tokens_are_401(http, gateway, token_keys):
    forged = TokenSigner(
        generate_keypair()[0], issuer="tollgate-keys", audience="tollgate-gateway", ttl_seconds=60
    ).sign({"sub": "00000000-0000-0000-0000-000000000001", "roles": ["org_admin"]})
    genuine_signer = TokenSigner(
        token_keys[0], issuer="tollgate-keys", audience="tollgate-gateway", ttl_seconds=60
    )
    expired = genuine_signer.sign({"sub": "00000000-0000-0000-0000-000000000001"}, ttl_seconds=-120)
    for token in (forged, expired, "not.a.jwt"):
        response = await http.get(f"{gateway.url}/v1/keys", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["type"].endswith("/invalid-token")


async def test_revoked_key_is_401(http, gateway, sign_up):
    account = await sign_up()
    admin = bearer(account["tokens"]["access_token"])
    created = await http.post(f"{gateway.url}/v1/keys", json={"name": "ci"}, headers=admin)
    key = created.json()
    assert (
        await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key["key"]))
    ).status_code == 200
    revoked = await http.delete(f"{gateway.url}/v1/keys/{key['id']}", headers=admin)
    assert revoked.status_code == 200
    # The replica that served the revocation forgets the key at once (read-your-writes).
    response = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key["key"]))
    assert response.status_code == 401


async def test_expired_key_is_401(http, gateway, sign_up):
    import asyncio

    account = await sign_up()
    admin = bearer(account["tokens"]["access_token"])
    expires_at = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    created = await http.post(
        f"{gateway.url}/v1/keys", json={"name": "short", "expires_at": expires_at}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert (await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))).status_code == 200
    await asyncio.sleep(1.6)
    response = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_a_key_made_valid_again_is_accepted_by_other_replicas(
    http, gateway, replicas, sign_up
):
    """A replica remembers a refused secret for a few seconds; the key's change event makes it
    forget, so a key whose expiry was removed works again everywhere."""
    import asyncio

    account = await sign_up()
    admin = bearer(account["tokens"]["access_token"])
    expires_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    created = (
        await http.post(
            f"{gateway.url}/v1/keys", json={"name": "k", "expires_at": expires_at}, headers=admin
        )
    ).json()
    await asyncio.sleep(1.2)
    replica_hello = f"{replicas[0].url}/api/demo/hello"
    refused = await http.get(replica_hello, headers=bearer(created["key"]))
    assert refused.status_code == 401  # asked the keys service, now remembered as invalid
    revived = await http.patch(
        f"{gateway.url}/v1/keys/{created['id']}", json={"expires_at": None}, headers=admin
    )
    assert revived.status_code == 200, revived.text
    for _ in range(100):
        again = await http.get(replica_hello, headers=bearer(created["key"]))
        if again.status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert again.status_code == 200


async def test_a_lookup_overtaken_by_a_revocation_is_not_cached(
    http, gateway, sign_up, monkeypatch
):
    account = await sign_up()
    key, key_id = account["api_key"]["key"], account["api_key"]["id"]
    authenticator = gateway._server.config.app.state.gateway.authenticator  # type: ignore[attr-defined]
    verify, answered, release = authenticator.keys.verify, asyncio.Event(), asyncio.Event()

    async def answer_then_stall(secret_hash):
        answer = await verify(secret_hash)  # still valid at this moment
        answered.set()
        await release.wait()
        return answer

    monkeypatch.setattr(authenticator.keys, "verify", answer_then_stall)
    in_flight = asyncio.create_task(http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key)))
    await answered.wait()
    admin = bearer(account["tokens"]["access_token"])
    assert (await http.delete(f"{gateway.url}/v1/keys/{key_id}", headers=admin)).status_code == 200
    await asyncio.sleep(0.5)  # the key event from NATS has evicted the key too by now
    release.set()
    assert (await in_flight).status_code == 200  # concurrent with the revocation: either is fair
    monkeypatch.setattr(authenticator.keys, "verify", verify)
    after = await http.get(f"{gateway.url}/api/demo/hello", headers=bearer(key))
    assert after.status_code == 401  # the stale answer was not cached
