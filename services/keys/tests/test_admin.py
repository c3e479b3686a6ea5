"""The platform super admin: created from configuration, lists every organisation."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
import structlog
from structlog.testing import capture_logs

from tollgate_keys.admin import bootstrap
from tollgate_keys.admin.bootstrap import SuperAdminConfigError, ensure_super_admin
from tollgate_shared.events.tables import outbox

from .conftest import STRONG_PASSWORD, assert_problem

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


# Bootstrap refusals, on a database whose data is committed as it is at a real start-up.


@pytest.fixture
async def committed(committed_keys_app) -> AsyncIterator[tuple]:
    """(sessionmaker, client) of the app whose data is committed."""
    transport = httpx.ASGITransport(app=committed_keys_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keys") as http:
        yield committed_keys_app.state.runtime.sessionmaker, http


async def committed_user(sessionmaker, email):
    async with sessionmaker() as session:
        row = (
            await session.execute(
                sa.text("SELECT is_super_admin, password_hash FROM keys.users WHERE email = :e"),
                {"e": email},
            )
        ).first()
    return None if row is None else (row.is_super_admin, row.password_hash)


async def committed_login(http, mint_identity, email, password):
    return await http.post(
        "/v1/auth/login",
        json={"email": email, "password": password},
        headers=mint_identity("anonymous"),
    )


async def test_bootstrap_refuses_to_promote_a_customer_account(
    committed, keys_settings, mint_identity
):
    sessionmaker, http = committed
    email = f"customer-{uuid.uuid4().hex[:8]}@example.com"
    signup = await http.post(
        "/v1/signup",
        json={"organization_name": "Customer", "email": email, "password": STRONG_PASSWORD},
        headers=mint_identity("anonymous"),
    )
    assert signup.status_code == 201, signup.text
    before = await committed_user(sessionmaker, email)

    settings = keys_settings.model_copy(
        update={"superadmin_email": email.upper(), "superadmin_password": ADMIN_PASSWORD}
    )
    with pytest.raises(SuperAdminConfigError) as refused:
        await ensure_super_admin(sessionmaker, settings)
    assert str(refused.value) == (
        f"TOLLGATE_KEYS_SUPERADMIN_EMAIL ({email}) belongs to an existing account that is not a "
        "super admin; refusing to promote it. Configure another email."
    )
    assert await committed_user(sessionmaker, email) == before
    assert before is not None and before[0] is False
    customer = await committed_login(http, mint_identity, email, STRONG_PASSWORD)
    assert customer.status_code == 200
    assert "super_admin" not in str(customer.json())
    wrong = await committed_login(http, mint_identity, email, ADMIN_PASSWORD)
    assert_problem(wrong, 401, "invalid-credentials")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "it must be at least 10 characters"),
        (" padded passphrase ", "it must not start or end with spaces"),
        ("aaaaaaaaaaaa", "it must use at least 4 different characters"),
    ],
)
async def test_a_weak_configured_password_stops_the_start_and_names_the_rule(
    committed, keys_settings, monkeypatch, password, rule
):
    sessionmaker, _ = committed
    email = f"platform-{uuid.uuid4().hex[:8]}@example.com"
    settings = keys_settings.model_copy(
        update={"superadmin_email": email, "superadmin_password": password}
    )
    with capture_logs() as logs, pytest.raises(SuperAdminConfigError) as refused:
        # A logger bound inside capture_logs (the module's own was cached at its first use).
        monkeypatch.setattr(bootstrap, "logger", structlog.get_logger())
        await ensure_super_admin(sessionmaker, settings)
    # One line an operator can read in the log: which setting, which rule.
    assert {
        "event": "super admin configuration refused",
        "reason": str(refused.value),
        "log_level": "error",
    } in logs
    assert str(refused.value).startswith(
        "TOLLGATE_KEYS_SUPERADMIN_PASSWORD breaks the password rules: "
    )
    assert rule in str(refused.value)
    assert "\n" not in str(refused.value)
    assert password not in str(refused.value)
    assert await committed_user(sessionmaker, email) is None


async def test_a_password_change_in_the_configuration_must_follow_the_rules(
    committed, keys_settings, mint_identity
):
    sessionmaker, http = committed
    email = f"platform-{uuid.uuid4().hex[:8]}@example.com"
    settings = keys_settings.model_copy(
        update={"superadmin_email": email, "superadmin_password": ADMIN_PASSWORD}
    )
    await ensure_super_admin(sessionmaker, settings)
    created = await committed_user(sessionmaker, email)
    assert created is not None and created[0] is True

    weak = settings.model_copy(update={"superadmin_password": "admin"})
    with pytest.raises(SuperAdminConfigError, match="at least 10 characters"):
        await ensure_super_admin(sessionmaker, weak)
    assert await committed_user(sessionmaker, email) == created
    assert (await committed_login(http, mint_identity, email, ADMIN_PASSWORD)).status_code == 200

    # A strong new password is applied; the old one stops working.
    stronger = settings.model_copy(update={"superadmin_password": "another operator passphrase"})
    await ensure_super_admin(sessionmaker, stronger)
    old = await committed_login(http, mint_identity, email, ADMIN_PASSWORD)
    assert_problem(old, 401, "invalid-credentials")
    new = await committed_login(http, mint_identity, email, "another operator passphrase")
    assert new.status_code == 200


async def test_replicas_starting_together_create_one_super_admin(committed, keys_settings):
    """Several replicas run the bootstrap at once on an empty database; none fails to start."""
    import asyncio

    sessionmaker, _http = committed
    email = f"platform-{uuid.uuid4().hex[:8]}@example.com"
    settings = keys_settings.model_copy(
        update={"superadmin_email": email, "superadmin_password": ADMIN_PASSWORD}
    )
    await asyncio.gather(*(ensure_super_admin(sessionmaker, settings) for _ in range(4)))
    user = await committed_user(sessionmaker, email)
    assert user is not None and user[0] is True
