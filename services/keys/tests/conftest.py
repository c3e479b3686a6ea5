import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.app import MIGRATIONS_DIR, create_app
from tollgate_keys.config import KeysSettings
from tollgate_shared.identity import generate_keypair
from tollgate_shared.migrations import upgrade
from tollgate_shared.testing.database import rolled_back_sessions

STRONG_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def token_keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="session")
def keys_settings(
    new_database: Callable[[str], str],
    nats_url: str,
    identity_keys: tuple[str, str],
    token_keys: tuple[str, str],
) -> KeysSettings:
    database_url = new_database("keys")
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="keys")
    return KeysSettings(
        env="test",
        database_url=database_url,
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
        token_private_key=token_keys[0],
        expiry_sweep_interval_seconds=0.2,
    )


@pytest.fixture(scope="session")
async def keys_app(keys_settings: KeysSettings) -> AsyncIterator[FastAPI]:
    app = create_app(keys_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def db(keys_app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """This test's sessions; everything they write is rolled back at the end."""
    async with rolled_back_sessions(keys_app.state.runtime.engine, keys_app) as sessionmaker:
        yield sessionmaker


@pytest.fixture
async def client(keys_app: FastAPI, db: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=keys_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keys") as http:
        yield http


@dataclass
class Tenant:
    """An organisation created through signup, with headers to act as its people and keys."""

    org_id: uuid.UUID
    admin_id: uuid.UUID
    email: str
    first_key: str
    first_key_id: uuid.UUID
    signup: dict[str, Any]
    mint: Callable[..., dict[str, str]]

    def as_user(self, role: str = "org_admin", user_id: uuid.UUID | None = None) -> dict[str, str]:
        return self.mint(
            "user", principal_id=str(user_id or self.admin_id), org_id=self.org_id, roles=(role,)
        )

    def as_key(self, *scopes: str) -> dict[str, str]:
        return self.mint(
            "key", principal_id=str(self.first_key_id), org_id=self.org_id, scopes=scopes
        )

    @property
    def admin(self) -> dict[str, str]:
        return self.as_user("org_admin")


@pytest.fixture
def sign_up(
    client: httpx.AsyncClient, mint_identity: Callable[..., dict[str, str]]
) -> Callable[..., Any]:
    async def create(name: str = "Acme", email: str | None = None) -> Tenant:
        email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
        response = await client.post(
            "/v1/signup",
            json={"organization_name": name, "email": email, "password": STRONG_PASSWORD},
            headers=mint_identity("anonymous"),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Tenant(
            org_id=uuid.UUID(body["organization"]["id"]),
            admin_id=uuid.UUID(body["user"]["id"]),
            email=email,
            first_key=body["api_key"]["key"],
            first_key_id=uuid.UUID(body["api_key"]["id"]),
            signup=body,
            mint=mint_identity,
        )

    return create


@pytest.fixture
async def acme(sign_up: Callable[..., Any]) -> Tenant:
    return await sign_up("Acme")  # type: ignore[no-any-return]


@pytest.fixture
async def globex(sign_up: Callable[..., Any]) -> Tenant:
    return await sign_up("Globex")  # type: ignore[no-any-return]
