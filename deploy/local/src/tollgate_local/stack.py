"""The whole stack on one machine: embedded PostgreSQL and NATS (or external ones), migrations,
the services, the gateway and a demo upstream, plus a demo organisation with a key.

`make dev` and the end-to-end tests both start the stack through this class.
"""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from tollgate_billing.app import MIGRATIONS_DIR as BILLING_MIGRATIONS
from tollgate_keys.app import MIGRATIONS_DIR as KEYS_MIGRATIONS
from tollgate_local.processes import ManagedProcess
from tollgate_local.secrets import StackSecrets
from tollgate_metering.app import MIGRATIONS_DIR as METERING_MIGRATIONS
from tollgate_shared.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tollgate_shared.migrations import upgrade

SUPERADMIN_EMAIL = "admin@example.com"
DEMO_ORGANIZATION = "Demo Org"


@dataclass(frozen=True)
class Ports:
    gateway: int
    keys: int
    metering: int
    billing: int
    demo_upstream: int
    nats: int

    @classmethod
    def dev(cls) -> "Ports":
        """The documented defaults (ARCHITECTURE.md); embedded NATS avoids 4222."""
        return cls(
            gateway=8080, keys=8101, metering=8103, billing=8102, demo_upstream=8190, nats=14222
        )

    @classmethod
    def free(cls) -> "Ports":
        return cls(
            gateway=free_port(),
            keys=free_port(),
            metering=free_port(),
            billing=free_port(),
            demo_upstream=free_port(),
            nats=free_port(),
        )


@dataclass(frozen=True)
class DemoAccount:
    organization_id: str
    email: str
    password: str
    api_key: str


@dataclass(frozen=True)
class StackInfo:
    gateway_url: str
    keys_url: str
    metering_url: str
    billing_url: str
    demo_upstream_url: str
    database: str
    nats_url: str
    state_dir: Path
    demo: DemoAccount
    superadmin_email: str
    superadmin_password: str


class Stack:
    def __init__(
        self,
        *,
        state_dir: Path,
        ports: Ports,
        database_url: str | None = None,
        nats_url: str | None = None,
        billing_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir, self.ports = state_dir.resolve(), ports
        # More settings for billing (the end-to-end tests turn Stripe on against localstripe).
        self.billing_env = billing_env or {}
        self.external_database_url = database_url
        self.external_nats_url = nats_url
        self._postgres: EmbeddedPostgres | None = None
        self._nats: EmbeddedNats | None = None
        self.processes: dict[str, ManagedProcess] = {}

    @classmethod
    def from_environment(cls, *, state_dir: Path, ports: Ports) -> "Stack":
        """External servers when TOLLGATE_DATABASE_URL / TOLLGATE_NATS_URL are set."""
        return cls(
            state_dir=state_dir,
            ports=ports,
            database_url=os.environ.get("TOLLGATE_DATABASE_URL") or None,
            nats_url=os.environ.get("TOLLGATE_NATS_URL") or None,
        )

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        stack_secrets = StackSecrets.load_or_create(self.state_dir / "secrets.json")
        database_url = self._database()
        nats_url = self._nats_server()
        upgrade(migrations_dir=KEYS_MIGRATIONS, database_url=database_url, schema="keys")
        upgrade(migrations_dir=METERING_MIGRATIONS, database_url=database_url, schema="metering")
        upgrade(migrations_dir=BILLING_MIGRATIONS, database_url=database_url, schema="billing")

        common = {
            "TOLLGATE_ENV": "dev",
            "TOLLGATE_LOG_FORMAT": "json",
            "TOLLGATE_DATABASE_URL": database_url,
            "TOLLGATE_NATS_URL": nats_url,
            "TOLLGATE_IDENTITY_PUBLIC_KEY": stack_secrets.identity_public_key,
        }
        keys_url = f"http://127.0.0.1:{self.ports.keys}"
        metering_url = f"http://127.0.0.1:{self.ports.metering}"
        billing_url = f"http://127.0.0.1:{self.ports.billing}"
        demo_url = f"http://127.0.0.1:{self.ports.demo_upstream}"
        gateway_url = f"http://127.0.0.1:{self.ports.gateway}"
        routes_file = self._routes_file(demo_url)
        log_dir = self.state_dir / "logs"
        self.processes = {
            "keys": ManagedProcess(
                name="keys",
                module="tollgate_keys.cli",
                args=["serve", "--port", str(self.ports.keys)],
                env={
                    **common,
                    "TOLLGATE_KEYS_TOKEN_PRIVATE_KEY": stack_secrets.user_token_private_key,
                    "TOLLGATE_KEYS_SUPERADMIN_EMAIL": SUPERADMIN_EMAIL,
                    "TOLLGATE_KEYS_SUPERADMIN_PASSWORD": stack_secrets.superadmin_password,
                },
                log_dir=log_dir,
            ),
            "metering": ManagedProcess(
                name="metering",
                module="tollgate_metering.cli",
                args=["serve", "--port", str(self.ports.metering)],
                env={
                    **common,
                    "TOLLGATE_METERING_BILLING_IDENTITY_PUBLIC_KEY": (
                        stack_secrets.billing_identity_public_key
                    ),
                },
                log_dir=log_dir,
            ),
            "billing": ManagedProcess(
                name="billing",
                module="tollgate_billing.cli",
                args=["serve", "--port", str(self.ports.billing)],
                env={
                    **common,
                    "TOLLGATE_BILLING_METERING_URL": metering_url,
                    "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY": (
                        stack_secrets.billing_identity_private_key
                    ),
                    **self.billing_env,
                },
                log_dir=log_dir,
            ),
            "demo-upstream": ManagedProcess(
                name="demo-upstream",
                module="tollgate_local.demo_upstream",
                args=["--port", str(self.ports.demo_upstream)],
                env=common,
                log_dir=log_dir,
            ),
            "gateway": ManagedProcess(
                name="gateway",
                module="tollgate_gateway.cli",
                args=["serve", "--port", str(self.ports.gateway)],
                env={
                    **common,
                    "TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY": stack_secrets.identity_private_key,
                    "TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY": stack_secrets.user_token_public_key,
                    "TOLLGATE_GATEWAY_KEYS_URL": keys_url,
                    "TOLLGATE_GATEWAY_METERING_URL": metering_url,
                    "TOLLGATE_GATEWAY_BILLING_URL": billing_url,
                    "TOLLGATE_GATEWAY_ROUTES_FILE": str(routes_file),
                    # Usage events not yet in JetStream are kept across restarts with the state.
                    "TOLLGATE_GATEWAY_USAGE_SPOOL_DIR": str(self.state_dir / "usage-spool"),
                },
                log_dir=log_dir,
            ),
        }
        for process in self.processes.values():
            process.start()
        self.processes["keys"].wait_until_ready(keys_url + "/readyz")
        self.processes["metering"].wait_until_ready(metering_url + "/readyz")
        self.processes["billing"].wait_until_ready(billing_url + "/readyz")
        self.processes["demo-upstream"].wait_until_ready(demo_url + "/healthz")
        self.processes["gateway"].wait_until_ready(gateway_url + "/readyz")
        return StackInfo(
            gateway_url=gateway_url,
            keys_url=keys_url,
            metering_url=metering_url,
            billing_url=billing_url,
            demo_upstream_url=demo_url,
            database="external" if self.external_database_url else "embedded",
            nats_url=nats_url,
            state_dir=self.state_dir,
            demo=self._demo_account(gateway_url),
            superadmin_email=SUPERADMIN_EMAIL,
            superadmin_password=stack_secrets.superadmin_password,
        )

    def stop(self) -> None:
        """Gateway first (no new traffic), then services, then NATS and PostgreSQL."""
        for name in ("gateway", "demo-upstream", "billing", "metering", "keys"):
            if name in self.processes:
                self.processes[name].stop()
        if self._nats is not None:
            self._nats.stop()
            self._nats = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None

    def _database(self) -> str:
        if self.external_database_url:
            return self.external_database_url
        self._postgres = EmbeddedPostgres(self.state_dir / "postgres")
        self._postgres.start()
        return self._postgres.create_database("tollgate")

    def _nats_server(self) -> str:
        if self.external_nats_url:
            return self.external_nats_url
        self._nats = EmbeddedNats(self.state_dir / "nats", port=self.ports.nats)
        return self._nats.start()

    def _routes_file(self, demo_url: str) -> Path:
        """The operator's own routes file when TOLLGATE_GATEWAY_ROUTES_FILE names one, else a
        file routing /api/demo to the demo upstream."""
        if own := os.environ.get("TOLLGATE_GATEWAY_ROUTES_FILE"):
            return Path(own).resolve()
        path = self.state_dir / "routes.toml"
        path.write_text(
            "# Written by the launcher at every start. To route your own API instead, write a\n"
            "# file like this one and start with TOLLGATE_GATEWAY_ROUTES_FILE=/path/to/it.\n"
            "[[routes]]\n"
            'name = "demo"\n'
            'prefix = "/api/demo"\n'
            f'upstream = "{demo_url}"\n'
            'meter = "api_requests"\n'
        )
        return path

    def _demo_account(self, gateway_url: str) -> DemoAccount:
        """Reuse the demo account from an earlier run if its key still works, else sign up."""
        saved = self.state_dir / "demo.json"
        if saved.exists():
            demo = DemoAccount(**json.loads(saved.read_text()))
            check = httpx.get(
                f"{gateway_url}/api/demo/hello",
                headers={"Authorization": f"Bearer {demo.api_key}"},
                timeout=10,
            )
            if check.status_code == 200:
                return demo
        password = secrets.token_urlsafe(12)
        email = f"demo-{secrets.token_hex(3)}@example.com"
        response = httpx.post(
            f"{gateway_url}/v1/signup",
            json={"organization_name": DEMO_ORGANIZATION, "email": email, "password": password},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        demo = DemoAccount(
            organization_id=body["organization"]["id"],
            email=email,
            password=password,
            api_key=body["api_key"]["key"],
        )
        saved.write_text(json.dumps(demo.__dict__, indent=2))
        saved.chmod(0o600)
        return demo
