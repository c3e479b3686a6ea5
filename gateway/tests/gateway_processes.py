"""Gateway replicas as real processes, started as the launcher starts them
(python -m tollgate_gateway.cli serve)."""

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tollgate_local.processes import ManagedProcess
from tollgate_shared.embedded import free_port

from .usage_stream import DEADLINE_SECONDS


class GatewayProcess:
    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            name=f"gateway-{self.port}",
            module="tollgate_gateway.cli",
            args=["serve", "--port", str(self.port)],
            env=env,
            log_dir=log_dir,
        )

    async def start(self) -> "GatewayProcess":
        self.process.start()
        # In a thread: the keys service and the upstream answer from this test's event loop.
        await asyncio.to_thread(self.process.wait_until_ready, f"{self.url}/readyz", timeout=60)
        return self

    def kill(self) -> None:
        assert self.process.running
        self.process.kill()  # SIGKILL: no shutdown hook runs

    async def metric(self, http, name: str, **labels: str) -> float:
        text = (await http.get(f"{self.url}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                wanted = all(sample.labels.get(label) == value for label, value in labels.items())
                if sample.name == name and wanted:
                    return float(sample.value)
        return 0.0

    async def wait_until_published(self, http) -> None:
        deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
        while await self.metric(http, "tollgate_gateway_usage_spool_lag_bytes") > 0:
            assert asyncio.get_running_loop().time() < deadline, "spool not published"
            await asyncio.sleep(0.05)


def gateway_environment(
    *, nats_url, identity_keys, token_keys, keys_server, routes_file, spool_dir
) -> dict[str, str]:
    return {
        "TOLLGATE_ENV": "test",
        "TOLLGATE_LOG_FORMAT": "json",
        "TOLLGATE_NATS_URL": nats_url,
        "TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY": identity_keys[0],
        "TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY": token_keys[1],
        "TOLLGATE_GATEWAY_KEYS_URL": keys_server.url,
        "TOLLGATE_GATEWAY_ROUTES_FILE": str(routes_file),
        "TOLLGATE_GATEWAY_USAGE_SPOOL_DIR": str(spool_dir),
        "TOLLGATE_GATEWAY_USAGE_PUBLISH_TIMEOUT_SECONDS": "1",
    }
