"""The metering service as a real process, started as the launcher starts it
(python -m tollgate_metering.cli serve), for tests that kill it with SIGKILL."""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tollgate_local.processes import ManagedProcess
from tollgate_metering.config import MeteringSettings
from tollgate_shared.embedded import free_port

READY_TIMEOUT_SECONDS = 30.0


def metering_environment(settings: MeteringSettings) -> dict[str, str]:
    """The environment variables that make a process load these settings."""
    return {
        "TOLLGATE_ENV": settings.env,
        "TOLLGATE_LOG_FORMAT": "json",
        "TOLLGATE_DATABASE_URL": settings.database_url,
        "TOLLGATE_NATS_URL": settings.nats_url,
        "TOLLGATE_IDENTITY_PUBLIC_KEY": settings.identity_public_key,
        "TOLLGATE_METERING_USAGE_CONSUMER_NAME": settings.usage_consumer_name,
        "TOLLGATE_METERING_USAGE_BATCH_SIZE": str(settings.usage_batch_size),
    }


class MeteringProcess:
    """One metering process at a time on a fixed port: a restart after a kill takes the same
    port, so clients keep their URL (uvicorn binds with SO_REUSEADDR)."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            name=f"metering-{self.port}",
            module="tollgate_metering.cli",
            args=["serve", "--port", str(self.port)],
            env=env,
            log_dir=log_dir,
        )
        self.starts = 0
        self.kills = 0

    async def start(self) -> "MeteringProcess":
        self.process.start()
        self.starts += 1
        # In a thread: the test's own clients keep running in this event loop meanwhile.
        await asyncio.to_thread(
            self.process.wait_until_ready, f"{self.url}/readyz", timeout=READY_TIMEOUT_SECONDS
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, open transactions die with their connections."""
        assert self.process.running, f"metering was not running; see {self.process.log_path}"
        self.process.kill()
        self.kills += 1

    async def metric(self, http: httpx.AsyncClient, name: str, **labels: str) -> float:
        text = (await http.get(f"{self.url}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                wanted = all(sample.labels.get(label) == value for label, value in labels.items())
                if sample.name == name and wanted:
                    return float(sample.value)
        return 0.0


@contextmanager
def stopped_at_exit(metering: MeteringProcess) -> Iterator[MeteringProcess]:
    """Stops the process whatever happens in the block (a failed assertion included)."""
    try:
        yield metering
    finally:
        metering.process.stop()


async def usage_total(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    meter: str,
    since: datetime,
    until: datetime,
) -> Decimal:
    """The meter's total over [since, until) from the usage API, summed over hourly windows."""
    response = await http.get(
        f"{url}/v1/meters/{meter}/usage",
        params={"from": since.isoformat(), "to": until.isoformat(), "window": "hour"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    # Decimal, not float: the answer gives fractions as the nearest double's shortest text.
    body = json.loads(response.text, parse_float=Decimal)
    return sum((Decimal(window["value"]) for window in body["data"]), Decimal(0))
