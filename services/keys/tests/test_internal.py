"""The gateway's internal endpoints: verify a secret, report usage in batches."""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tollgate_shared import api_key_format

from .conftest import assert_problem, database_state

VERIFY = "/internal/v1/keys/verify"
USAGE = "/internal/v1/keys/usage"


def verify_body(secret):
    return {"secret_hash": api_key_format.hash_key(secret)}


async def test_verify_returns_what_the_gateway_caches(client, acme, gateway):
    response = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "key_id": str(acme.first_key_id),
        "org_id": str(acme.org_id),
        "name": "Default key",
        "environment": "live",
        "scopes": ["read", "write"],
        "rate_limit": None,
        "plan": "free",
        "suspended": False,
        "expires_at": None,
    }


async def test_verify_is_only_for_services(client, acme, mint_identity):
    body = verify_body(acme.first_key)
    assert_problem(await client.post(VERIFY, json=body), 401, "unauthorized")
    for headers in (
        acme.admin,
        acme.as_key("admin"),
        mint_identity("anonymous"),
        mint_identity("user", principal_id=str(acme.admin_id), roles=("super_admin",)),
    ):
        response = await client.post(VERIFY, json=body, headers=headers)
        assert_problem(response, 403, "forbidden")
        assert "key_id" not in response.json()


async def test_usage_is_only_for_services(client, acme, db):
    before = await database_state(db)
    body = {
        "keys": [
            {
                "key_id": str(acme.first_key_id),
                "last_used_at": datetime.now(UTC).isoformat(),
                "requests": 5,
            }
        ]
    }
    assert_problem(await client.post(USAGE, json=body), 401)
    assert_problem(await client.post(USAGE, json=body, headers=acme.admin), 403)
    assert await database_state(db) == before


async def test_unknown_secret_is_404_with_reason(client, gateway):
    response = await client.post(
        VERIFY, json={"secret_hash": hashlib.sha256(b"nope").hexdigest()}, headers=gateway
    )
    assert_problem(response, 404, "invalid-key")
    assert response.json()["reason"] == "unknown"


async def test_revoked_secret_is_404_with_reason(client, acme, gateway):
    await client.delete(f"/v1/keys/{acme.first_key_id}", headers=acme.admin)
    response = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert_problem(response, 404, "invalid-key")
    assert response.json()["reason"] == "revoked"


async def test_expired_key_is_404_with_reason(client, acme, gateway, db):
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": acme.first_key_id},
        )
    response = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert_problem(response, 404, "invalid-key")
    assert response.json()["reason"] == "expired"


async def test_verify_reports_the_key_expiry(client, acme, gateway):
    expires_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    patched = await client.patch(
        f"/v1/keys/{acme.first_key_id}",
        json={"expires_at": expires_at.isoformat()},
        headers=acme.admin,
    )
    assert patched.status_code == 200
    response = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert datetime.fromisoformat(response.json()["expires_at"]) == expires_at


async def test_rotated_out_secret_is_valid_during_grace_then_expired(client, acme, gateway, db):
    rotated = await client.post(
        f"/v1/keys/{acme.first_key_id}/rotate", json={"grace_seconds": 600}, headers=acme.admin
    )
    old = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert old.status_code == 200
    assert datetime.fromisoformat(old.json()["expires_at"]) == datetime.fromisoformat(
        rotated.json()["previous_secret_expires_at"]
    )

    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.api_key_secrets SET expires_at = now() - interval '1 second'"
                " WHERE secret_hash = :hash"
            ),
            {"hash": api_key_format.hash_key(acme.first_key)},
        )
    expired = await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    assert_problem(expired, 404, "invalid-key")
    assert expired.json()["reason"] == "expired"
    current = await client.post(VERIFY, json=verify_body(rotated.json()["key"]), headers=gateway)
    assert current.status_code == 200


async def test_verify_changes_nothing(client, acme, gateway, db):
    before = await database_state(db)
    assert (
        await client.post(VERIFY, json=verify_body(acme.first_key), headers=gateway)
    ).status_code == 200
    assert await database_state(db) == before


@pytest.mark.parametrize(
    "secret_hash",
    ["", "xyz", "A" * 64, "0" * 63, "0" * 65, None, 42, "tg_live_" + "a" * 38],
)
async def test_verify_refuses_what_is_not_a_sha256_hex(client, gateway, secret_hash):
    response = await client.post(VERIFY, json={"secret_hash": secret_hash}, headers=gateway)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "secret_hash"]


async def test_usage_updates_last_used_at_and_request_count(client, acme, globex, gateway):
    used_at = datetime.now(UTC).replace(microsecond=0)
    response = await client.post(
        USAGE,
        json={
            "keys": [
                {
                    "key_id": str(acme.first_key_id),
                    "last_used_at": used_at.isoformat(),
                    "requests": 7,
                },
                {
                    "key_id": str(globex.first_key_id),
                    "last_used_at": used_at.isoformat(),
                    "requests": 2,
                },
                {"key_id": str(uuid.uuid4()), "last_used_at": used_at.isoformat(), "requests": 1},
            ]
        },
        headers=gateway,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}

    acme_key = (await client.get(f"/v1/keys/{acme.first_key_id}", headers=acme.admin)).json()
    assert acme_key["request_count"] == 7
    assert datetime.fromisoformat(acme_key["last_used_at"]) == used_at
    globex_key = (await client.get(f"/v1/keys/{globex.first_key_id}", headers=globex.admin)).json()
    assert globex_key["request_count"] == 2


async def test_usage_adds_up_and_last_used_at_only_moves_forward(client, acme, gateway):
    later = datetime.now(UTC).replace(microsecond=0)
    earlier = later - timedelta(minutes=5)
    for used_at, requests in ((later, 10), (earlier, 5)):
        response = await client.post(
            USAGE,
            json={
                "keys": [
                    {
                        "key_id": str(acme.first_key_id),
                        "last_used_at": used_at.isoformat(),
                        "requests": requests,
                    }
                ]
            },
            headers=gateway,
        )
        assert response.json() == {"updated": 1}
    key = (await client.get(f"/v1/keys/{acme.first_key_id}", headers=acme.admin)).json()
    assert key["request_count"] == 15
    assert datetime.fromisoformat(key["last_used_at"]) == later


async def test_usage_batch_with_the_same_key_twice_counts_both(client, acme, gateway):
    # Gateway replicas flush independently, so one batch may carry a key more than once.
    later = datetime.now(UTC).replace(microsecond=0)
    earlier = later - timedelta(seconds=30)
    response = await client.post(
        USAGE,
        json={
            "keys": [
                {
                    "key_id": str(acme.first_key_id),
                    "last_used_at": later.isoformat(),
                    "requests": 3,
                },
                {
                    "key_id": str(acme.first_key_id),
                    "last_used_at": earlier.isoformat(),
                    "requests": 4,
                },
            ]
        },
        headers=gateway,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 1}
    key = (await client.get(f"/v1/keys/{acme.first_key_id}", headers=acme.admin)).json()
    assert key["request_count"] == 7
    assert datetime.fromisoformat(key["last_used_at"]) == later


async def test_empty_usage_batch_updates_nothing(client, gateway, acme, db):
    before = await database_state(db)
    response = await client.post(USAGE, json={"keys": []}, headers=gateway)
    assert response.json() == {"updated": 0}
    assert await database_state(db) == before


@pytest.mark.parametrize(
    "entry",
    [
        {"last_used_at": "2026-01-01T00:00:00", "requests": 1},  # naive time
        {"last_used_at": "2026-01-01T00:00:00Z", "requests": -1},
        {"last_used_at": "2026-01-01T00:00:00Z", "requests": 10**13},
        {"last_used_at": "yesterday", "requests": 1},
        {"last_used_at": "2026-01-01T00:00:00Z"},
        {"last_used_at": "2026-01-01T00:00:00Z", "requests": 1, "key_id": "not-a-uuid"},
    ],
)
async def test_bad_usage_entries_are_422_and_change_nothing(client, acme, gateway, db, entry):
    before = await database_state(db)
    response = await client.post(
        USAGE, json={"keys": [{"key_id": str(acme.first_key_id), **entry}]}, headers=gateway
    )
    assert_problem(response, 422, "validation-error")
    assert await database_state(db) == before


async def test_usage_batch_above_the_limit_is_422(client, acme, gateway, db):
    entry = {
        "key_id": str(acme.first_key_id),
        "last_used_at": "2026-01-01T00:00:00Z",
        "requests": 1,
    }
    before = await database_state(db)
    response = await client.post(USAGE, json={"keys": [entry] * 10_001}, headers=gateway)
    assert_problem(response, 422, "validation-error")
    assert await database_state(db) == before
