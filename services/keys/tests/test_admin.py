"""The platform super admin: created from configuration, lists every organisation."""

import uuid

import sqlalchemy as sa

from tollgate_keys.admin.bootstrap import ensure_super_admin
from tollgate_shared.events.tables import outbox

from .conftest import assert_problem

ADMIN_EMAIL = "Platform@Example.com"
ADMIN_PASSWORD = "operator passphrase 2026"


async def login(client, anonymous, password):
    return await client.post(
        "/v1/auth/login",
        json={"email": ADMIN_EMAIL.lower(), "password": password},
        headers=anonymous,
    )


async def test_bootstrap_creates_the_super_admin_once_and_follows_password_changes(
    client, db, keys_settings, anonymous, access_tokens
):
    settings = keys_settings.model_copy(
        update={"superadmin_email": ADMIN_EMAIL, "superadmin_password": ADMIN_PASSWORD}
    )
    await ensure_super_admin(db, settings)
    await ensure_super_admin(db, settings)  # every start-up runs it again

    response = await login(client, anonymous, ADMIN_PASSWORD)
    assert response.status_code == 200, response.text
    claims = access_tokens.verify(response.json()["access_token"])
    assert claims["roles"] == ["super_admin"]
    assert claims.get("org") is None
    async with db() as session:
        created = (
            await session.execute(
                sa.select(outbox.c.payload).where(
                    outbox.c.subject == "tollgate.keys.user.created",
                    outbox.c.payload["data"]["email"].astext == ADMIN_EMAIL.lower(),
                )
            )
        ).all()
    assert len(created) == 1
    assert created[0].payload["data"]["organization_id"] is None

    changed = "a new operator passphrase"
    await ensure_super_admin(db, settings.model_copy(update={"superadmin_password": changed}))
    assert_problem(await login(client, anonymous, ADMIN_PASSWORD), 401, "invalid-credentials")
    assert (await login(client, anonymous, changed)).status_code == 200


async def test_super_admin_walks_every_organisation_page_by_page(
    client, acme, globex, mint_identity
):
    super_admin = mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/admin/organizations", params=params, headers=super_admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Newest first; each test sees only its own organisations (the rest is rolled back).
    assert seen == [str(globex.org_id), str(acme.org_id)]
