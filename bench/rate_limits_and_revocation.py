"""Rate-limit accuracy across gateway replicas, and revocation propagation to all of them, in one
run.

    make bench-limits
    uv run python bench/rate_limits_and_revocation.py --help

The stack starts as `make dev` starts it (`Stack`: embedded PostgreSQL and NATS, keys service,
demo upstream, gateway), plus three more gateway processes with the environment of the Stack's
gateway (identity keys, keys URL, NATS, routes file, usage spool folder): four replicas sharing
one JetStream KV bucket of rate-limit counters. The Stack's gateway is replica 1. A benchmark
organisation signs up and is put on the `enterprise` plan (no org-wide quota), so each key's own
override is its only limit.

Accuracy: per limit, a fresh key whose override is `{"per_hour": limit}` gets a burst of ten
times the limit, request i to replica i mod 4, on 64 concurrent connections. The accepted (2xx)
answers should number within [limit, limit * 1.01]; an answer other than 2xx or 429 is an error.
A burst that straddles an hour boundary (two windows) is redone with a fresh key.

Revocation: per trial, a fresh key is used once on each replica (so each has cached it), revoked
through replica 1, and replicas 2 to 4 are polled until each answers 401; the clock starts when the
revoke call has answered. The trials run before the bursts, while the stack is otherwise idle.

Every process started here is stopped at the end, also on Ctrl-C and SIGTERM.
"""

import argparse
import asyncio
import contextlib
import itertools
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from gateway_metrics import counter_total
from harness import cleanup_on_exit, progress
from keys_database import set_plan
from machine import describe_machine

from tollgate_gateway.rate_limits.replicas import HEARTBEAT_SECONDS
from tollgate_local.processes import ManagedProcess
from tollgate_local.stack import Ports, Stack
from tollgate_shared.embedded import free_port, nats_server_binary

REQUEST_PATH = "/api/demo/hello"  # the Stack's demo route: an API key is required
TOLERATED_OVERSHOOT = 0.01  # accepted within [limit, limit * 1.01]
REVOCATION_DEADLINE_SECONDS = 5.0
POLL_INTERVAL_SECONDS = 0.002
BURST_ATTEMPTS = 3  # a burst shorter than an hour crosses at most one boundary


class UnexpectedAnswer(Exception):
    pass


@dataclass
class Burst:
    limit: int
    requests: int
    statuses: Counter[str]  # status code, or the name of the error that stood in for one
    seconds: float
    local_grants: int  # leases the replicas granted alone (shared counters unreachable)
    attempts: int

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def errors(self) -> Counter[str]:
        return Counter(
            {s: n for s, n in self.statuses.items() if not s.startswith("2") and s != "429"}
        )

    @property
    def over_percent(self) -> float:
        return max(0, self.accepted - self.limit) / self.limit * 100

    @property
    def under_percent(self) -> float:
        return max(0, self.limit - self.accepted) / self.limit * 100

    @property
    def on_target(self) -> bool:
        return self.limit <= self.accepted <= self.limit * (1 + TOLERATED_OVERSHOOT)


@dataclass
class Revocations:
    seconds: list[float] = field(default_factory=list)  # per trial, until all replicas refuse
    failures: Counter[str] = field(default_factory=Counter)  # reason → trials

    @property
    def trials(self) -> int:
        return len(self.seconds) + self.failures.total()

    def percentile_ms(self, percent: int) -> float:
        if len(self.seconds) == 1:
            return self.seconds[0] * 1000
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[percent - 1] * 1000


@dataclass
class Report:
    started: str
    command: str
    machine: list[tuple[str, str]]
    replicas: int
    connections: int
    burst_factor: int
    bursts: list[Burst] = field(default_factory=list)
    revocations: Revocations = field(default_factory=Revocations)

    def to_markdown(self) -> str:
        lines = [
            f"### Rate limits and revocation, {self.replicas} gateway replicas ({self.started})",
            "",
            f"Command: `{self.command}`",
            "",
            "| machine | |",
            "|---|---|",
            *[f"| {name} | {value} |" for name, value in self.machine],
            "",
            *self._accuracy(),
            "",
            *self._revocation(),
        ]
        return "\n".join(lines) + "\n"

    def _accuracy(self) -> list[str]:
        lines = [
            f"**Rate-limit accuracy**: a fresh key per limit, its override `per_hour` = limit "
            "(organisation on `enterprise`: no org-wide quota); a burst of "
            f"{self.burst_factor} times the limit, request i to replica i mod {self.replicas}, "
            f"{self.connections} concurrent connections.",
            "",
            "| limit per hour | requests | accepted (2xx) | refused (429) | errors | over % "
            "| under % | req/s | local grants | within [limit, limit * 1.01] |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for burst in self.bursts:
            lines.append(
                f"| {burst.limit:,} | {burst.requests:,} | {burst.accepted:,} "
                f"| {burst.statuses['429']:,} | {burst.errors.total():,} "
                f"| {burst.over_percent:.2f} | {burst.under_percent:.2f} "
                f"| {burst.requests / burst.seconds:,.0f} | {burst.local_grants:,} "
                f"| {'yes' if burst.on_target else 'NO'} |"
            )
        lines.append("")
        lines += [
            f"- limit {burst.limit:,}: errors {dict(burst.errors)}"
            for burst in self.bursts
            if burst.errors
        ]
        lines += [
            f"- limit {burst.limit:,}: burst redone with a fresh key, the earlier one crossed "
            "an hour boundary"
            for burst in self.bursts
            if burst.attempts > 1
        ]
        lines.append(
            "- local grants: leases a replica granted alone because the shared counters did not "
            "answer in time (0 means every token came from the shared counters)."
        )
        return lines

    def _revocation(self) -> list[str]:
        revocations = self.revocations
        lines = [
            f"**Revocation propagation**: {revocations.trials} "
            f"trials; each a fresh key cached by all {self.replicas} replicas, revoked through "
            "replica 1; the clock runs from the revoke call's answer until replicas "
            f"2 to {self.replicas} all answer 401 (each polled every "
            f"{POLL_INTERVAL_SECONDS * 1000:g} ms; replica 1 checked to refuse at once after).",
            "",
            "| trials measured | p50 ms | p99 ms | max ms | failed trials |",
            "|--:|--:|--:|--:|--:|",
        ]
        if revocations.seconds:
            lines.append(
                f"| {len(revocations.seconds)} | {revocations.percentile_ms(50):.1f} "
                f"| {revocations.percentile_ms(99):.1f} | {max(revocations.seconds) * 1000:.1f} "
                f"| {revocations.failures.total()} |"
            )
        lines += [
            f"- {trials} trial(s) failed: {reason}"
            for reason, trials in revocations.failures.most_common()
        ]
        return lines


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Rate-limit accuracy over gateway replicas and revocation propagation.",
    )
    parser.add_argument(
        "--limits",
        type=lambda text: [int(limit) for limit in text.split(",")],
        default=[100, 1_000, 10_000],
        help="per-hour limits to test, comma-separated (default 100,1000,10000)",
    )
    parser.add_argument("--burst-factor", type=int, default=10, help="requests per burst / limit")
    parser.add_argument("--connections", type=int, default=64, help="concurrent, in each burst")
    parser.add_argument("--replicas", type=int, default=4, help="gateway processes in all")
    parser.add_argument("--trials", type=int, default=50, help="revocation trials")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, state)"
    )
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join(["python", *sys.argv]),
        machine=describe_machine(**{"nats-server": nats_server_version()}),
        replicas=arguments.replicas,
        connections=arguments.connections,
        burst_factor=arguments.burst_factor,
    )
    directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-limits-"))
    try:
        run(arguments, report, directory)
    finally:
        if arguments.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    markdown = report.to_markdown()
    print(markdown)
    if arguments.markdown:
        arguments.markdown.write_text(markdown)
    return 0


def nats_server_version() -> str:
    """The embedded server's version: the shared counters live in its JetStream KV."""
    completed = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, check=True
    )
    return completed.stdout.strip().removeprefix("nats-server: ")


def run(arguments: argparse.Namespace, report: Report, directory: Path) -> None:
    with cleanup_on_exit() as cleanup:
        progress("starting the stack (PostgreSQL, NATS, keys, demo upstream, gateway)")
        stack = Stack(state_dir=directory / "stack", ports=Ports.free())
        info = stack.start()
        cleanup.callback(stack.stop)
        progress(f"starting {arguments.replicas - 1} more gateway replicas")
        replicas = [info.gateway_url, *start_replicas(stack, arguments.replicas - 1, cleanup)]
        all_ready_at = time.monotonic()
        organization_id, access_token = sign_up(info.gateway_url)
        # Before any of its keys exist: gateways read the plan with each key they verify.
        set_plan(stack, organization_id, "enterprise")
        asyncio.run(measure(arguments, report, replicas, f"Bearer {access_token}", all_ready_at))


def start_replicas(stack: Stack, count: int, cleanup: contextlib.ExitStack) -> list[str]:
    """More gateway processes configured as the Stack's own (each takes its own spool slot),
    started together; their URLs once all are ready."""
    started = []
    for number in range(2, count + 2):  # the Stack's gateway is replica 1
        url = f"http://127.0.0.1:{free_port()}"
        process = ManagedProcess(
            name=f"gateway-{number}",
            module="tollgate_gateway.cli",
            args=["serve", "--port", url.rsplit(":", 1)[1]],
            env=stack.processes["gateway"].env,
            log_dir=stack.state_dir / "logs",
        )
        cleanup.callback(process.stop)
        process.start()
        started.append((process, url))
    for process, url in started:
        process.wait_until_ready(f"{url}/readyz")
    return [url for _, url in started]


def sign_up(gateway_url: str) -> tuple[str, str]:
    """A benchmark organisation of its own: its id and its admin's access token."""
    response = httpx.post(
        f"{gateway_url}/v1/signup",
        json={
            "organization_name": "Rate-limit benchmark",
            "email": f"bench-{secrets.token_hex(4)}@example.com",
            "password": secrets.token_urlsafe(16),
        },
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    return body["organization"]["id"], body["tokens"]["access_token"]


async def measure(
    arguments: argparse.Namespace,
    report: Report,
    replicas: list[str],
    admin_authorization: str,
    all_ready_at: float,
) -> None:
    admin = {"Authorization": admin_authorization}
    connector = aiohttp.TCPConnector(limit=arguments.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        progress(f"revocation: {arguments.trials} trials")
        for _ in range(arguments.trials):
            await revocation_trial(session, replicas, admin, report.revocations)
        # Lease sizes divide by the replica count, which each replica refreshes per heartbeat.
        await asyncio.sleep(max(0.0, all_ready_at + HEARTBEAT_SECONDS + 0.5 - time.monotonic()))
        for limit in arguments.limits:
            requests = limit * arguments.burst_factor
            progress(f"accuracy: limit {limit:,} per hour, burst of {requests:,} requests")
            report.bursts.append(
                await measure_burst(session, replicas, admin, limit, requests, arguments)
            )


# -- rate-limit accuracy -----------------------------------------------------------------------


async def measure_burst(
    session: aiohttp.ClientSession,
    replicas: list[str],
    admin: dict[str, str],
    limit: int,
    requests: int,
    arguments: argparse.Namespace,
) -> Burst:
    for attempt in range(1, BURST_ATTEMPTS + 1):
        key = await create_key(session, replicas[0], admin, rate_limit={"per_hour": limit})
        local_grants_before = await local_grants(session, replicas)
        hour, started = _hour(), time.perf_counter()
        statuses = await send_burst(
            session, replicas, key["key"], requests=requests, connections=arguments.connections
        )
        seconds = time.perf_counter() - started
        if _hour() == hour:
            return Burst(
                limit=limit,
                requests=requests,
                statuses=statuses,
                seconds=seconds,
                local_grants=await local_grants(session, replicas) - local_grants_before,
                attempts=attempt,
            )
        progress("the burst crossed an hour boundary (two windows): again with a fresh key")
    raise RuntimeError(f"{BURST_ATTEMPTS} bursts in a row crossed an hour boundary")


async def send_burst(
    session: aiohttp.ClientSession,
    replicas: list[str],
    key: str,
    *,
    requests: int,
    connections: int,
) -> Counter[str]:
    """`requests` calls with the key, request i to replica i mod len(replicas), `connections` at
    a time (each sends its next request when its previous one is answered)."""
    headers = {"Authorization": f"Bearer {key}"}
    turn = itertools.count()
    statuses: Counter[str] = Counter()

    async def connection() -> None:
        while (number := next(turn)) < requests:
            statuses[await answer(session, replicas[number % len(replicas)], headers)] += 1

    await asyncio.gather(*(connection() for _ in range(connections)))
    return statuses


async def local_grants(session: aiohttp.ClientSession, replicas: list[str]) -> int:
    """Leases granted without the shared counters, summed over the replicas."""
    total = 0
    for url in replicas:
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
        total += counter_total(text, "tollgate_gateway_rate_limit_decisions", outcome="local_lease")
    return total


def _hour() -> float:
    return time.time() // 3600  # the gateways' hour windows are aligned on the Unix epoch


# -- revocation propagation --------------------------------------------------------------------


async def revocation_trial(
    session: aiohttp.ClientSession,
    replicas: list[str],
    admin: dict[str, str],
    revocations: Revocations,
) -> None:
    try:
        revocations.seconds.append(await _time_revocation(session, replicas, admin))
    except (UnexpectedAnswer, aiohttp.ClientError, TimeoutError) as error:
        revocations.failures[f"{type(error).__name__}: {error}"] += 1


async def _time_revocation(
    session: aiohttp.ClientSession, replicas: list[str], admin: dict[str, str]
) -> float:
    """Seconds from the revoke call's answer until every other replica refuses the key."""
    key = await create_key(session, replicas[0], admin)
    headers = {"Authorization": f"Bearer {key['key']}"}
    for url in replicas:  # each caches the key: from now on it answers without the keys service
        await expect(session, "GET", url + REQUEST_PATH, 200, headers=headers)
    await expect(session, "DELETE", f"{replicas[0]}/v1/keys/{key['id']}", 200, headers=admin)
    revoked_at = time.perf_counter()  # committed: the others learn it only through NATS
    try:
        async with asyncio.timeout(REVOCATION_DEADLINE_SECONDS):
            refused_at = await asyncio.gather(
                *(until_refused(session, url, headers) for url in replicas[1:])
            )
    except TimeoutError:
        raise UnexpectedAnswer(
            f"a replica still accepted the key {REVOCATION_DEADLINE_SECONDS:g} s after"
        ) from None
    # The replica that served the revocation evicts the key at once (read-your-writes).
    await expect(session, "GET", replicas[0] + REQUEST_PATH, 401, headers=headers)
    return max(refused_at) - revoked_at


async def until_refused(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    while True:
        status = await answer(session, url, headers)
        if status == "401":
            return time.perf_counter()
        if status != "200":
            raise UnexpectedAnswer(f"{url} answered {status} while the key was being revoked")
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


# -- HTTP --------------------------------------------------------------------------------------


async def answer(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    """The status of GET url + REQUEST_PATH, or the name of the error that stood in for one."""
    try:
        async with session.get(url + REQUEST_PATH, headers=headers) as response:
            await response.read()  # so the connection is reused
            return str(response.status)
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__


async def create_key(
    session: aiohttp.ClientSession,
    gateway_url: str,
    admin: dict[str, str],
    *,
    rate_limit: dict[str, int] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "benchmark"}
    if rate_limit:
        body["rate_limit"] = rate_limit
    return await expect(session, "POST", f"{gateway_url}/v1/keys", 201, headers=admin, json=body)


async def expect(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    status: int,
    *,
    headers: dict[str, str],
    json: dict[str, Any] | None = None,
) -> Any:
    """The answer's JSON body, if it has the expected status."""
    async with session.request(method, url, headers=headers, json=json) as response:
        body = await response.read()
        if response.status != status:
            raise UnexpectedAnswer(f"{method} {url} answered {response.status}: {body[:200]!r}")
        return await response.json(content_type=None) if body else None


if __name__ == "__main__":
    sys.exit(main())
