"""Concurrent requests on committed data (separate connections, like separate replicas)."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from .conftest import STRONG_PASSWORD


@pytest.fixture
async def committing_client(committed_keys_app) -> AsyncIterator[httpx.AsyncClient]:
    """Requests commit for real, each on its own connection (a database of its own)."""
    transport = httpx.ASGITransport(app=committed_keys_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keys") as http:
        yield http


async def _org_with_two_admins(http, mint_identity):
    anonymous = mint_identity("anonymous")
    signups = []
    for name in ("Twin A", "Twin B"):
        response = await http.post(
            "/v1/signup",
            json={
                "organization_name": name,
                "email": f"twin-{uuid.uuid4().hex[:8]}@example.com",
                "password": STRONG_PASSWORD,
            },
            headers=anonymous,
        )
        assert response.status_code == 201, response.text
        signups.append(response.json())
    org_id = uuid.UUID(signups[0]["organization"]["id"])
    first, second = (uuid.UUID(body["user"]["id"]) for body in signups)

    def admin(user_id):
        return mint_identity("user", principal_id=str(user_id), org_id=org_id, roles=("org_admin",))

    invited = await http.post(
        "/v1/members",
        json={"email": signups[1]["user"]["email"], "role": "org_admin"},
        headers=admin(first),
    )
    assert invited.status_code == 201, invited.text
    accepted = await http.post(
        "/v1/invitations/accept",
        json={"token": invited.json()["invitation_token"], "password": STRONG_PASSWORD},
        headers=anonymous,
    )
    assert accepted.status_code == 200, accepted.text
    return first, second, admin


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    committing_client, mint_identity
):
    for _ in range(3):
        first, second, admin = await _org_with_two_admins(committing_client, mint_identity)
        responses = await asyncio.gather(
            committing_client.patch(
                f"/v1/members/{first}", json={"role": "member"}, headers=admin(second)
            ),
            committing_client.patch(
                f"/v1/members/{second}", json={"role": "member"}, headers=admin(first)
            ),
        )
        outcomes = sorted(response.status_code for response in responses)
        # 403: one demotion committed before the other's rights check, which reads the role
        # from the database and so found the caller no longer org_admin.
        assert outcomes in ([200, 409], [200, 403]), [r.text for r in responses]
        members = (await committing_client.get("/v1/members", headers=admin(first))).json()
        assert [m["role"] for m in members].count("org_admin") == 1


async def test_demoting_and_removing_the_two_admins_at_once_leave_one_admin(
    committing_client, mint_identity
):
    for _ in range(3):
        first, second, admin = await _org_with_two_admins(committing_client, mint_identity)
        responses = await asyncio.gather(
            committing_client.delete(f"/v1/members/{first}", headers=admin(second)),
            committing_client.patch(
                f"/v1/members/{second}", json={"role": "member"}, headers=admin(first)
            ),
        )
        outcomes = sorted(response.status_code for response in responses)
        # 403: the removal committed before the demotion's rights check, so the demoting admin
        # was no longer a member at all (rights are read from the current membership).
        assert outcomes in ([204, 409], [200, 409], [204, 403]), [r.text for r in responses]
        if outcomes == [204, 403]:
            assert responses[1].json()["type"].endswith("/no-membership")
        # Whichever won, the second admin is still a member (the first may have been removed).
        members = (await committing_client.get("/v1/members", headers=admin(second))).json()
        assert [m["role"] for m in members].count("org_admin") == 1
