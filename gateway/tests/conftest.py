"""A real keys service, a demo upstream and gateway replicas, over HTTP on free ports."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate_gateway.app import create_app as create_gateway
from tollgate_gateway.config import GatewaySettings
from tollgate_keys.app import create_app as create_keys
from tollgate_keys.config import KeysSettings
from tollgate_keys.organizations.handlers import SUBSCRIPTION_EVENTS
from tollgate_keys.testing import migrated_test_settings
from tollgate_local.demo_upstream import create_app as create_demo
from tollgate_shared.embedded import free_port
from tollgate_shared.events.streams import stream_for_service
from tollgate_shared.identity import generate_keypair
from tollgate_shared.testing.consumers import consumer_from_stream_end
from tollgate_shared.testing.http import RunningServer, serving

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def token_keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="session")
async def subscriptions_consumer_name(nats_url: str) -> AsyncIterator[str]:
    """The keys app's own consumer of billing's subscription events (suspension tests publish
    them): another keys app on a shared NATS would otherwise take half of them."""
    async with consumer_from_stream_end(
        nats_url, stream_for_service("billing"), SUBSCRIPTION_EVENTS, prefix="gateway-keys"
    ) as name:
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
        database_url=new_database("gateway_keys"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
        token_private_key=token_keys[0],
        subscriptions_consumer_name=subscriptions_consumer_name,
    )


@pytest.fixture(scope="session")
async def keys_server(keys_settings: KeysSettings) -> AsyncIterator[RunningServer]:
    async with serving(create_keys(keys_settings)) as server:
        yield server


@pytest.fixture(scope="session")
async def upstream(identity_keys: tuple[str, str]) -> AsyncIterator[RunningServer]:
    async with serving(create_demo(identity_keys[1])) as server:
        yield server


@pytest.fixture(scope="session")
def routes_file(tmp_path_factory: pytest.TempPathFactory, upstream: RunningServer) -> Path:
    path = tmp_path_factory.mktemp("gateway") / "routes.toml"
    path.write_text(
        f"""
[[routes]]
name = "demo"
prefix = "/api/demo"
upstream = "{upstream.url}"
credential = "any"

[[routes]]
name = "demo-admin"
prefix = "/api/demo/admin"
upstream = "{upstream.url}/echo"
scopes = ["admin"]

[[routes]]
name = "impatient"
prefix = "/api/impatient"
upstream = "{upstream.url}"
timeout_seconds = 0.5

[[routes]]
name = "down"
prefix = "/api/down"
upstream = "http://127.0.0.1:{free_port()}"

[[routes]]
name = "readonly"
prefix = "/api/readonly"
upstream = "{upstream.url}"
methods = ["GET"]
"""
    )
    return path


@pytest.fixture(scope="session")
def gateway_settings(
    nats_url: str,
    identity_keys: tuple[str, str],
    token_keys: tuple[str, str],
    keys_server: RunningServer,
    routes_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "env": "test",
            "nats_url": nats_url,
            "identity_private_key": identity_keys[0],
            "user_token_public_key": token_keys[1],
            "keys_url": keys_server.url,
            # A loaded CI machine once took 2.7 s to verify a key: the 2 s default made it a 503.
            "keys_timeout_seconds": 10.0,
            # Nothing answers there: quotas fail open unless a test serves a metering stub.
            "metering_url": f"http://127.0.0.1:{free_port()}",
            "routes_file": routes_file,
            "max_body_bytes": 64 * 1024,
            "key_usage_flush_seconds": 0.2,
            "usage_spool_dir": tmp_path_factory.mktemp("usage-spool"),
        }
        return GatewaySettings(**(values | overrides))

    return make


@pytest.fixture(scope="session")
async def gateway(
    gateway_settings: Callable[..., GatewaySettings],
) -> AsyncIterator[RunningServer]:
    async with serving(create_gateway(gateway_settings())) as server:
        yield server


@pytest.fixture
async def replicas(
    gateway_settings: Callable[..., GatewaySettings],
) -> AsyncIterator[list[RunningServer]]:
    """Two more gateway replicas sharing NATS and the keys service."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(serving(create_gateway(gateway_settings())))
            for _ in range(2)
        ]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def sign_up(http: httpx.AsyncClient, gateway: RunningServer) -> Callable[..., Any]:
    """Sign up a fresh organisation through the gateway; returns the signup body."""

    async def create() -> dict[str, Any]:
        response = await http.post(
            f"{gateway.url}/v1/signup",
            json={
                "organization_name": "Acme",
                "email": f"owner-{uuid.uuid4().hex[:10]}@example.com",
                "password": PASSWORD,
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}
