import asyncio
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa
import stripe
from fastapi import FastAPI
from nats.aio.client import Client
from nats.js.api import StreamConfig
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.app import create_app
from tollgate_billing.config import BillingSettings
from tollgate_billing.customers.handlers import ORGANIZATION_CREATED
from tollgate_billing.testing import migrated_test_settings
from tollgate_shared.embedded import free_port
from tollgate_shared.errors import PROBLEM_BASE, PROBLEM_JSON
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import ensure_stream, stream_for_service
from tollgate_shared.testing.consumers import (
    consumer_from_stream_end as shared_consumer_from_stream_end,
)
from tollgate_shared.testing.database import rolled_back_sessions

# Each table, and which of its rows database_state compares. Customers and their events only
# for the test's own organisations: every app's consumer also stores what other tests publish
# (on the shared NATS), at any moment, and the relay marks its events published.
TABLES = {
    "plans": "true",
    "customers": "org_id::text = ANY(:orgs)",
    "subscriptions": "org_id::text = ANY(:orgs)",
    "pending_invoice_items": "customer_id IN (SELECT id FROM billing.customers"
    " WHERE org_id::text = ANY(:orgs))",
    "outbox": "payload->>'orgid' = ANY(:orgs)",
    "invoices": "org_id::text = ANY(:orgs)",
    "invoice_lines": "invoice_id IN (SELECT id FROM billing.invoices"
    " WHERE org_id::text = ANY(:orgs))",
    "invoice_number_sequences": "true",
    "onboarding_sessions": "org_id::text = ANY(:orgs)",
}
DEADLINE_SECONDS = 15.0


def consumer_from_stream_end(
    nats_url: str, stream: StreamConfig, filter_subject: str
) -> AbstractAsyncContextManager[str]:
    return shared_consumer_from_stream_end(nats_url, stream, filter_subject, prefix="billing")


@asynccontextmanager
async def running_app(
    *, database_url: str, nats_url: str, identity_public_key: str, **settings_changes: Any
) -> AsyncIterator[FastAPI]:
    """A migrated billing app whose organizations consumer starts at the KEYS stream's end
    (settings_changes: other settings than the tests' defaults, e.g. Stripe's)."""
    async with consumer_from_stream_end(
        nats_url, stream_for_service("keys"), ORGANIZATION_CREATED
    ) as organizations:
        settings = migrated_test_settings(
            database_url=database_url,
            nats_url=nats_url,
            identity_public_key=identity_public_key,
            organizations_consumer_name=organizations,
        )
        for name, value in settings_changes.items():
            setattr(settings, name, value)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield app


@pytest.fixture(scope="session")
async def billing_app(
    new_database: Callable[[str], str], nats_url: str, identity_keys: tuple[str, str]
) -> AsyncIterator[FastAPI]:
    async with running_app(
        database_url=new_database("billing"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
    ) as app:
        yield app


@pytest.fixture(scope="session")
async def committed_app(
    new_database: Callable[[str], str], nats_url: str, identity_keys: tuple[str, str]
) -> AsyncIterator[FastAPI]:
    """Another billing app, on a database of its own, whose consumer's commits are real: for
    tests that feed it events through NATS."""
    async with running_app(
        database_url=new_database("billing_committed"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
    ) as app:
        yield app


@pytest.fixture
async def db(billing_app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """This test's sessions; everything they write is rolled back at the end."""
    async with rolled_back_sessions(billing_app.state.runtime.engine, billing_app) as sessions:
        yield sessions


@pytest.fixture
async def client(billing_app: FastAPI, db: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=billing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        yield http


@pytest.fixture
async def committing_client(committed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        yield http


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@dataclass
class Org:
    """An organisation (billing knows it by id), with headers to act as its people and keys
    the way the gateway would forward them."""

    org_id: uuid.UUID
    mint: Callable[..., dict[str, str]]

    def user(self, role: str = "member") -> dict[str, str]:
        return self.mint("user", principal_id=str(uuid.uuid4()), org_id=self.org_id, roles=(role,))

    def key(self, *scopes: str) -> dict[str, str]:
        return self.mint("key", principal_id=str(uuid.uuid4()), org_id=self.org_id, scopes=scopes)


@pytest.fixture
def acme(mint_identity: Callable[..., dict[str, str]]) -> Org:
    return Org(uuid.uuid4(), mint_identity)


@pytest.fixture
def globex(mint_identity: Callable[..., dict[str, str]]) -> Org:
    return Org(uuid.uuid4(), mint_identity)


@pytest.fixture
def operator(mint_identity: Callable[..., dict[str, str]]) -> dict[str, str]:
    """A platform super_admin (outside any organisation), as the gateway forwards one."""
    return mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))


def organization_created(org_id: uuid.UUID, *, name: str = "Acme", event_id: str | None = None):
    """A tollgate.keys.organization.created CloudEvent as the keys service publishes it."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "/tollgate/keys",
        "type": ORGANIZATION_CREATED,
        "time": datetime.now(UTC).isoformat(),
        "orgid": str(org_id),
        "data": {
            "organization_id": str(org_id),
            "name": name,
            "plan": "free",
            "created_by_user_id": str(uuid.uuid4()),
        },
    }


async def published_on_billing(js: Any, watcher: str, subject: str) -> CloudEvent:
    """The first event about `subject` the watcher (a consumer on BILLING) receives. Every
    billing app on this NATS (other suites' too) publishes, so other subjects are skipped."""
    subscription = await js.pull_subscribe_bind(watcher, stream="BILLING")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        assert loop.time() < deadline, f"no event about {subject} was published"
        try:
            messages = await subscription.fetch(10, timeout=1)
        except TimeoutError:
            continue
        for message in messages:
            await message.ack()
            event = CloudEvent.from_json(message.data)
            if event.subject == subject:
                return event


async def publish_to_keys(client: Client, event: dict[str, Any]) -> None:
    js = client.jetstream()
    await ensure_stream(js, stream_for_service("keys"))
    # A fresh message id: JetStream would drop a repeated one, and these tests redeliver.
    await js.publish(
        event["type"], json.dumps(event).encode(), headers={"Nats-Msg-Id": uuid.uuid4().hex}
    )


async def wait_until_consumed(app: FastAPI, event_ids: list[str]) -> None:
    """Until the app's organizations consumer has applied (or skipped) every one of these."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    query = sa.text("SELECT count(*) FROM billing.inbox WHERE event_id = ANY(:ids)")
    while True:
        async with app.state.runtime.sessionmaker() as session:
            if await session.scalar(query, {"ids": event_ids}) == len(set(event_ids)):
                return
        assert loop.time() < deadline, "the organization events were not consumed"
        await asyncio.sleep(0.05)


async def database_state(
    db: async_sessionmaker[AsyncSession], *orgs: "Org"
) -> dict[str, tuple[int, str]]:
    """Row count and a digest of the rows of every table (customers and events: the given
    organisations'), to prove a request changed nothing."""
    state = {}
    org_ids = [str(org.org_id) for org in orgs]
    async with db() as session:
        for table, rows in TABLES.items():  # fixed names, never input
            digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            query = sa.text(
                f"SELECT count(*), {digest} FROM billing.{table} AS t WHERE {rows}"  # noqa: S608
            )
            row = (await session.execute(query, {"orgs": org_ids})).one()
            state[table] = (row[0], row[1])
    return state


async def add_customer(db: async_sessionmaker[AsyncSession], org_id: uuid.UUID, plan: str) -> None:
    """A customer on the plan, written straight to this test's rolled-back transaction."""
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "INSERT INTO billing.customers (id, org_id, name, plan_key, created_at, updated_at)"
                " VALUES (:id, :org, 'Acme', :plan, now(), now())"
            ),
            {"id": uuid.uuid4(), "org": org_id, "plan": plan},
        )


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """A clear RFC 9457 problem: the status, a type, a title, a detail and the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 422:
        assert body["errors"], body
    return body


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, identity_keys: tuple[str, str]) -> Any:
    """A complete production environment for BillingSettings; tests change one variable."""
    from tollgate_shared.identity import generate_keypair

    monkeypatch.setenv("TOLLGATE_ENV", "production")
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", "postgresql://billing@db/tollgate")
    monkeypatch.setenv("TOLLGATE_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("TOLLGATE_IDENTITY_PUBLIC_KEY", identity_keys[1])
    monkeypatch.setenv("TOLLGATE_BILLING_METERING_URL", "http://metering:8103")
    monkeypatch.setenv("TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY", generate_keypair()[0])
    return monkeypatch


@pytest.fixture
def settings(billing_app: FastAPI) -> BillingSettings:
    result: BillingSettings = billing_app.state.settings
    return result


@dataclass
class Metering:
    """A real metering app in-process, on a database of its own, that the billing test app
    reads usage from with billing's own service token."""

    app: FastAPI

    async def store(self, org_id: uuid.UUID, *events: tuple[str, str, datetime, dict]) -> None:
        """Store (meter, subject, time, data) usage events, committed, at any time."""
        from tollgate_metering.ingestion.repository import UsageEventRepository
        from tollgate_metering.ingestion.schemas import NewEvent

        async with self.app.state.runtime.sessionmaker() as session, session.begin():
            await UsageEventRepository(session).insert_new(
                org_id=org_id,
                source="api",
                events=[
                    NewEvent(
                        id=uuid.uuid4().hex,
                        type=type_,
                        subject=subject,
                        time=moment,
                        data_json=json.dumps(data),
                    )
                    for type_, subject, moment, data in events
                ],
            )


@pytest.fixture(scope="session")
async def metering(
    billing_app: FastAPI,
    new_database: Callable[[str], str],
    nats_url: str,
    identity_keys: tuple[str, str],
) -> AsyncIterator[Metering]:
    from tollgate_billing.invoices.metering_usage import MeteringUsageClient
    from tollgate_metering.app import create_app as create_metering_app
    from tollgate_metering.gateway_usage.handlers import USAGE_RECORDED
    from tollgate_metering.organizations.handlers import ORGANIZATION_EVENTS
    from tollgate_metering.testing import migrated_test_settings as metering_test_settings
    from tollgate_shared.events.streams import usage_stream
    from tollgate_shared.identity import generate_keypair

    private, public = generate_keypair()
    async with (
        consumer_from_stream_end(nats_url, usage_stream(), USAGE_RECORDED) as usage,
        consumer_from_stream_end(
            nats_url, stream_for_service("keys"), ORGANIZATION_EVENTS
        ) as organizations,
    ):
        settings = metering_test_settings(
            database_url=new_database("billing_metering"),
            nats_url=nats_url,
            identity_public_key=identity_keys[1],
            usage_consumer_name=usage,
            organizations_consumer_name=organizations,
        )
        settings.billing_identity_public_key = public
        app = create_metering_app(settings)
        async with app.router.lifespan_context(app):
            configured = billing_app.state.metering_usage
            billing_app.state.metering_usage = MeteringUsageClient(
                base_url="http://metering",
                private_key=private,
                transport=httpx.ASGITransport(app=app),
            )
            try:
                yield Metering(app)
            finally:
                billing_app.state.metering_usage = configured


# Stripe (ADR 0021): a localstripe process with the test front of localstripe_front.py (which
# emulates what real Stripe does and localstripe does not: Idempotency-Key replay, one-off
# invoices, finalize, declines as 402, setup-mode Checkout; its docstring lists them), and a
# billing app with Stripe on, pointed at it, on a database of its own (its rows are committed:
# webhooks arrive on several connections at once).
LOCALSTRIPE_FRONT = Path(__file__).parent / "localstripe_front.py"
LOCALSTRIPE_START_SECONDS = 30.0


@dataclass
class LocalStripe:
    url: str
    secret_key: str
    webhook_secret: str

    def client(self) -> stripe.StripeClient:
        """The tests' own view of the fake Stripe account (no retries: what they see is one
        request each)."""
        return stripe.StripeClient(
            self.secret_key,
            base_addresses={"api": self.url},
            http_client=stripe.HTTPXClient(timeout=10),
        )

    async def requests(self) -> list[dict[str, Any]]:
        """Every /v1 request the front received: method, path, idempotency_key."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            result: list[dict[str, Any]] = (await http.get("/_config/front/requests")).json()
            return result

    async def delay_next(self, path: str, seconds: float) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post(
                "/_config/front/delay", json={"path": path, "seconds": seconds}
            )
            response.raise_for_status()

    async def refuse(self, path: str, body_contains: str) -> None:
        """From now on Stripe refuses (400) every POST to path whose form body contains the
        text, until lift_refusals."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post(
                "/_config/front/refuse", json={"path": path, "body_contains": body_contains}
            )
            response.raise_for_status()

    async def lift_refusals(self) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.delete("/_config/front/refuse")).raise_for_status()

    async def forget_idempotency_keys(self) -> None:
        """As Stripe does 24 hours after a key's first use."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post("/_config/front/forget-idempotency-keys")).raise_for_status()

    async def complete_checkout(self, session_id: str, card_number: str) -> None:
        """What the customer does on Stripe's hosted page."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post(
                f"/_config/front/checkout/{session_id}/complete", json={"number": card_number}
            )
            response.raise_for_status()

    def signature(
        self, payload: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """A Stripe-Signature header as Stripe computes it (HMAC-SHA256 of "<t>.<body>")."""
        moment = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(
            (secret or self.webhook_secret).encode(),
            f"{moment}.".encode() + payload,
            hashlib.sha256,
        ).hexdigest()
        return {"Stripe-Signature": f"t={moment},v1={digest}"}


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    port = free_port()
    log = tmp_path_factory.mktemp("localstripe") / "front.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(LOCALSTRIPE_FRONT), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LOCALSTRIPE_START_SECONDS
        while True:
            assert process.poll() is None, f"localstripe exited: {log.read_text()}"
            try:
                httpx.get(f"{url}/_config/front/requests", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "localstripe did not start"
                time.sleep(0.1)
        # Generated, never written down: nothing key-shaped in the repository.
        yield LocalStripe(
            url=url,
            secret_key="sk_test_" + secrets.token_hex(12),
            webhook_secret="whsec_" + secrets.token_hex(16),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
async def stripe_app(
    localstripe: LocalStripe,
    new_database: Callable[[str], str],
    nats_url: str,
    identity_keys: tuple[str, str],
) -> AsyncIterator[FastAPI]:
    async with running_app(
        database_url=new_database("billing_stripe"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
        stripe_secret_key=SecretStr(localstripe.secret_key),
        stripe_webhook_secret=SecretStr(localstripe.webhook_secret),
        stripe_api_base=localstripe.url,
        # Short, so the forced-timeout test is quick; retried like in production.
        stripe_timeout_seconds=2.0,
        stripe_max_network_retries=2,
        # The tests sync customers themselves, at chosen moments.
        stripe_sync_interval_seconds=3600,
    ) as app:
        yield app


@pytest.fixture
async def stripe_client(stripe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stripe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        yield http


WEBHOOK_PATH = "/v1/billing/webhooks/stripe"


async def deliver(
    http: httpx.AsyncClient, localstripe: LocalStripe, event: dict[str, Any], **signing: Any
) -> httpx.Response:
    """POST the event to billing's webhook as Stripe does: raw JSON, signed."""
    payload = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **localstripe.signature(payload, **signing)}
    return await http.post(WEBHOOK_PATH, content=payload, headers=headers)


async def stripe_event(localstripe: LocalStripe, type_: str, object_id: str) -> dict[str, Any]:
    """The event localstripe emitted about the object (the newest), exactly as it sends it."""
    async with httpx.AsyncClient(
        base_url=localstripe.url, headers={"Authorization": f"Bearer {localstripe.secret_key}"}
    ) as http:
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {"type": type_, "limit": 100}
        while True:
            page = (await http.get("/v1/events", params=params)).json()
            events += page["data"]
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
    matching = [event for event in events if event["data"]["object"]["id"] == object_id]
    assert matching, f"localstripe emitted no {type_} for {object_id}"
    return max(matching, key=lambda event: event["created"])


# Lines of an invoice pushed to Stripe: a fee, usage, a discount (negative) and tax.
STRIPE_TEST_LINES = [
    ("base_fee", "Pro (monthly)", 9900),
    ("metered", "api_requests: 1234567 (1000000 included)", 1185),
    ("discount", "WELCOME: 10 %", -1109),
    ("tax", "Tax 19 %", 1770),
]


async def open_invoice_with_lines(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org_id: uuid.UUID,
    now: datetime,
    period_start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
) -> uuid.UUID:
    """An open invoice of the organisation with STRIPE_TEST_LINES (its customer made first)."""
    from tollgate_billing.invoices.models import Invoice, InvoiceLine

    from .payment_helpers import open_invoice

    total = sum(amount for _, _, amount in STRIPE_TEST_LINES)
    invoice_id = await open_invoice(
        sessions, org_id=org_id, now=now, total=total, period_start=period_start
    )
    async with sessions() as session, session.begin():
        for position, (kind, description, amount) in enumerate(STRIPE_TEST_LINES):
            session.add(
                InvoiceLine(
                    invoice_id=invoice_id,
                    position=position,
                    kind=kind,
                    description=description,
                    amount=amount,
                )
            )
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.subtotal = total - STRIPE_TEST_LINES[-1][2]
    return invoice_id
