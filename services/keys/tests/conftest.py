import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.app import MIGRATIONS_DIR, create_app
from tollgate_keys.config import KeysSettings
from tollgate_keys.organizations.handlers import SUBSCRIPTION_EVENTS
from tollgate_keys.testing import migrated_test_settings
from tollgate_shared.errors import PROBLEM_BASE, PROBLEM_JSON
from tollgate_shared.events.streams import stream_for_service
from tollgate_shared.events.tables import outbox
from tollgate_shared.identity import TokenVerifier, generate_keypair
from tollgate_shared.migrations import upgrade
from tollgate_shared.testing.consumers import (
    consumer_from_stream_end as shared_consumer_from_stream_end,
)
from tollgate_shared.testing.database import rolled_back_sessions

STRONG_PASSWORD = "correct horse battery staple"
INVITEE_PASSWORD = "a brand new passphrase"
# Every table of the keys schema, the kit's outbox included: "changes nothing" means all of them.
TABLES = (
    "organizations",
    "users",
    "memberships",
    "invitations",
    "refresh_tokens",
    "api_keys",
    "api_key_secrets",
    "outbox",
)


@pytest.fixture(scope="session")
def token_keys() -> tuple[str, str]:
    return generate_keypair()


def consumer_from_stream_end(
    nats_url: str, filter_subject: str
) -> AbstractAsyncContextManager[str]:
    """The keys app's consumer of billing's subscription events, from the stream's end."""
    return shared_consumer_from_stream_end(
        nats_url, stream_for_service("billing"), filter_subject, prefix="keys"
    )


@pytest.fixture(scope="session")
async def subscriptions_consumer_name(nats_url: str) -> AsyncIterator[str]:
    async with consumer_from_stream_end(nats_url, SUBSCRIPTION_EVENTS) as name:
        yield name


@pytest.fixture(scope="session")
def keys_settings(
    new_database: Callable[[str], str],
    nats_url: str,
    identity_keys: tuple[str, str],
    token_keys: tuple[str, str],
    subscriptions_consumer_name: str,
) -> KeysSettings:
    return migrated_test_settings(
        database_url=new_database("keys"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
        token_private_key=token_keys[0],
        subscriptions_consumer_name=subscriptions_consumer_name,
    )


@pytest.fixture(scope="session")
async def keys_app(keys_settings: KeysSettings) -> AsyncIterator[FastAPI]:
    app = create_app(keys_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def committed_keys_app(
    keys_settings: KeysSettings, new_database: Callable[[str], str]
) -> AsyncIterator[FastAPI]:
    """Another keys app, on a database of its own, for tests that need real commits: several
    connections at once, or the background sweeper and outbox relay seeing the data."""
    database_url = new_database("keys_committed")
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema="keys")
    async with consumer_from_stream_end(keys_settings.nats_url, SUBSCRIPTION_EVENTS) as name:
        app = create_app(
            keys_settings.model_copy(
                update={"database_url": database_url, "subscriptions_consumer_name": name}
            )
        )
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


@pytest.fixture
def access_tokens(token_keys: tuple[str, str]) -> TokenVerifier:
    """Verifies user access tokens the way the gateway does."""
    return TokenVerifier(token_keys[1], issuer="tollgate-keys", audience="tollgate-gateway")


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
    client: httpx.AsyncClient

    async def invite(self, email: str, role: str = "member") -> dict[str, Any]:
        """The signup admin invites this email: the 201 answer."""
        response = await self.client.post(
            "/v1/members", json={"email": email, "role": role}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def join(
        self, email: str, role: str = "member", password: str = STRONG_PASSWORD
    ) -> uuid.UUID:
        """Invite the email and accept as its owner (password: theirs, or a new one if the email
        has no account yet). Returns the new member's user id."""
        token = (await self.invite(email, role))["invitation_token"]
        accepted = await self.client.post(
            "/v1/invitations/accept",
            json={"token": token, "password": password},
            headers=self.mint("anonymous"),
        )
        assert accepted.status_code == 200, accepted.text
        members = (await self.client.get("/v1/members", headers=self.admin)).json()
        return uuid.UUID(next(m["user_id"] for m in members if m["email"] == email.lower()))

    async def member(self, role: str = "member") -> dict[str, str]:
        """Headers of a new person who really holds this role here: the service reads a user's
        role from their membership, not from the token."""
        email = f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}@example.com"
        user_id = await self.join(email, role, password=INVITEE_PASSWORD)
        return self.as_user(role, user_id=user_id)

    def as_user(self, role: str = "org_admin", user_id: uuid.UUID | None = None) -> dict[str, str]:
        """A token as the gateway would forward it; the role in it is only what the token claims
        (the service checks the membership), so use member() to act as another role."""
        return self.mint(
            "user", principal_id=str(user_id or self.admin_id), org_id=self.org_id, roles=(role,)
        )

    def as_key(self, *scopes: str, key_id: uuid.UUID | None = None) -> dict[str, str]:
        return self.mint(
            "key",
            principal_id=str(key_id or self.first_key_id),
            org_id=self.org_id,
            scopes=scopes,
        )

    @property
    def admin(self) -> dict[str, str]:
        return self.as_user("org_admin")


SignUp = Callable[..., Awaitable[Tenant]]


@pytest.fixture
def anonymous(mint_identity: Callable[..., dict[str, str]]) -> dict[str, str]:
    """What the gateway forwards for a caller without credentials."""
    return mint_identity("anonymous")


@pytest.fixture
def gateway(mint_identity: Callable[..., dict[str, str]]) -> dict[str, str]:
    """The gateway calling the internal endpoints as a service."""
    return mint_identity("service", principal_id="gateway")


@pytest.fixture
def sign_up(client: httpx.AsyncClient, mint_identity: Callable[..., dict[str, str]]) -> SignUp:
    async def create(
        name: str = "Acme", email: str | None = None, password: str = STRONG_PASSWORD
    ) -> Tenant:
        email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
        response = await client.post(
            "/v1/signup",
            json={"organization_name": name, "email": email, "password": password},
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
            client=client,
        )

    return create


@pytest.fixture
async def acme(sign_up: SignUp) -> Tenant:
    return await sign_up("Acme")


@pytest.fixture
async def globex(sign_up: SignUp) -> Tenant:
    return await sign_up("Globex")


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """A clear RFC 9457 problem: the status, a type, a title, a detail and the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE)
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    assert body["title"]
    assert body["detail"]
    assert body["request_id"]
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 422 and body["type"] == PROBLEM_BASE + "validation-error":
        assert body["errors"], body
    return body


async def outbox_events(
    db: async_sessionmaker[AsyncSession], *, org_id: uuid.UUID | None = None, type_: str = ""
) -> list[dict[str, Any]]:
    """CloudEvents waiting in the outbox, oldest first; optionally of one org and one type."""
    query = sa.select(outbox.c.id, outbox.c.subject, outbox.c.payload).order_by(outbox.c.position)
    if org_id is not None:
        query = query.where(outbox.c.payload["orgid"].astext == str(org_id))
    if type_:
        query = query.where(outbox.c.subject == type_)
    async with db() as session:
        rows = (await session.execute(query)).all()
    for row in rows:
        # The outbox row, the NATS subject and the envelope agree.
        assert str(row.id) == row.payload["id"]
        assert row.subject == row.payload["type"]
        assert row.payload["specversion"] == "1.0"
        assert row.payload["source"] == "/tollgate/keys"
    return [row.payload for row in rows]


def only(events: list[dict[str, Any]], **data: Any) -> dict[str, Any]:
    """The single event whose data has these values."""
    matching = [
        event
        for event in events
        if all(event["data"].get(name) == value for name, value in data.items())
    ]
    assert len(matching) == 1, (data, events)
    return matching[0]


async def database_state(db: async_sessionmaker[AsyncSession]) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table, to prove a request changed nothing."""
    state = {}
    async with db() as session:
        for table in TABLES:  # fixed names, never input
            digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            query = sa.text(f"SELECT count(*), {digest} FROM keys.{table} AS t")  # noqa: S608
            row = (await session.execute(query)).one()
            state[table] = (row[0], row[1])
    return state
