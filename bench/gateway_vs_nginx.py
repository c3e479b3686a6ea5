"""The gateway against nginx and against no proxy at all, under the same load, in one run.

    make bench-gateway                      # installs wrk and nginx when missing, then this
    uv run python bench/gateway_vs_nginx.py --help

Three kinds of target serve the same tiny response from the same upstream:
  direct   the upstream itself: nginx answering `return 200 '{...}'` from one worker. A static
           nginx answer costs a few microseconds, so the upstream never bounds the proxies in
           front of it (a Python upstream would cap all the targets at its own speed).
  nginx    a second nginx with `proxy_pass` (upstream keep-alive, access log on, as the
           gateway logs every request too), `worker_processes auto`.
  gateway  the Tollgate gateway, started with the whole stack exactly as `make dev` starts it
           (`Stack`, embedded PostgreSQL and NATS, keys service), called with a valid API key
           on an operator route to the same upstream. Whatever the gateway does per request by
           default is on: authentication, routing, identity token, rate limiting and usage
           emission. The report says which of them were seen at work.

The gateway is one row per worker count (`--gateway-workers`, `TOLLGATE_GATEWAY_WORKERS`): for
each, the stack's gateway is started anew with that many uvicorn workers on its port, measured
under the same loads as the other targets, then stopped, so every row has a process of its own.
Its USAGE events are counted in JetStream before its first request and after it has stopped
(having drained its spool), and compared with the requests wrk saw answered. Each worker keeps
its own /metrics, so the gateway's counters are read only from a 1-process row.

The benchmark key carries its own rate limits, so high that the load never exhausts them
(`--key-rate-limit`), and its organisation is on the unlimited `enterprise` plan (`--plan`): the
limiter spends a token of every policy on every request, as in production, without refusing any.

Two loads: saturated (many connections: throughput) and moderate (a few connections: the
latency a proxy adds when it is not queueing). A py-spy profile of one gateway row (the one with
the fewest workers; all its workers when it has several) under the saturated load follows,
summarised by where the time goes.

Everything runs on loopback; every child process is stopped at the end.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from gateway_metrics import counter_total
from harness import cleanup_on_exit, progress
from keys_database import set_key_rate_limit, set_plan
from load import Load, Wrk, WrkResult, wrk_version
from machine import describe_machine
from nginx import UPSTREAM_BODY, Nginx, nginx_version
from py_spy_profile import ProfileSummary, record_profile

from tollgate_local.processes import ManagedProcess
from tollgate_local.stack import Ports, Stack, StackInfo
from tollgate_shared.embedded import free_port

ROUTE_NAME = "bench"
ROUTE_PREFIX = "/api/bench"
REQUEST_PATH = ROUTE_PREFIX + "/hello"
WORKERS_VARIABLE = "TOLLGATE_GATEWAY_WORKERS"
# The targets for this 2-core machine.
TARGET_GATEWAY_RPS = 5000
TARGET_ADDED_P99_MS = 5.0
TARGET_GATEWAY_NGINX_RATIO = 0.5
# High enough that no load here exhausts them (1,000,000 is the most a key may have per second).
UNREACHED_KEY_RATE_LIMIT = '{"per_second": 1000000, "per_hour": 1000000000}'
USAGE_SETTLE_SECONDS = 15


@dataclass(frozen=True)
class Target:
    """One row of the tables."""

    key: str
    title: str
    gateway_workers: int = 0  # 0: not the gateway


DIRECT = Target("direct", "direct (upstream nginx `return 200`)")
NGINX = Target("nginx", "nginx `proxy_pass`")


def gateway_target(workers: int) -> Target:
    processes = "1 process" if workers == 1 else f"{workers} workers"
    return Target(f"gateway-{workers}", f"Tollgate gateway (API key, {processes})", workers)


@dataclass
class SentRequests:
    """The requests one gateway row was sent: the probe's and every wrk run's."""

    answered: int = 0
    wrk_runs: int = 0
    # A wrk run that stops, or a connection that fails, leaves at most one request per
    # connection unanswered that the gateway may still have served.
    cut_short_at_most: int = 0

    def add_probe(self) -> None:
        self.answered += 1

    def add(self, result: WrkResult, load: Load) -> None:
        self.answered += result.requests
        self.wrk_runs += 1
        self.cut_short_at_most += load.connections + result.errors


@dataclass
class Features:
    """What one gateway row was seen doing per request, beyond authentication and routing."""

    workers: int
    sent: SentRequests = field(default_factory=SentRequests)
    rate_limit_policy: str | None = None
    # Read from /metrics, so only with one process; None: per-worker metrics not summed.
    rate_limit_decisions: dict[str, int] | None = None  # outcome → count
    route_requests_counted: int | None = None
    usage_events: int | None = None  # None: no USAGE stream

    def lines(self) -> list[str]:
        return [
            f"requests: {self._sent()}; counted by the gateway's /metrics on the route: "
            f"{self._counted()}",
            f"rate limiting: {self._rate_limiting()}",
            f"usage emission: {self._usage()}",
        ]

    def _sent(self) -> str:
        return (
            f"{self.sent.answered:,} answered (the probe and {self.sent.wrk_runs} wrk runs, "
            f"warm-ups included), at most {self.sent.cut_short_at_most:,} more cut short when "
            "a wrk run stopped"
        )

    def _not_summed(self) -> str:
        return (
            f"per-worker metrics not summed ({self.workers} workers, and a scrape reaches "
            "whichever one accepts it)"
        )

    def _counted(self) -> str:
        if self.route_requests_counted is None:
            return self._not_summed()
        return f"{self.route_requests_counted:,}"

    def _rate_limiting(self) -> str:
        if not self.rate_limit_policy:
            return "not seen (no `RateLimit-Policy` header on the probe's response)"
        return (
            f"on (`RateLimit-Policy: {self.rate_limit_policy}` on the probe's response; "
            f"limiter decisions: {self._decisions()})"
        )

    def _decisions(self) -> str:
        if self.rate_limit_decisions is None:
            return self._not_summed()
        decided = ", ".join(
            f"{count:,} {outcome}" for outcome, count in sorted(self.rate_limit_decisions.items())
        )
        return decided or "none counted"

    def _usage(self) -> str:
        if self.usage_events is None:
            return "not seen (no `USAGE` stream in JetStream)"
        return (
            f"on ({self.usage_events:,} events in `USAGE` from this row's gateway for "
            f"{self.sent.answered:,} requests answered: {self._usage_verdict(self.usage_events)})"
        )

    def _usage_verdict(self, events: int) -> str:
        extra = events - self.sent.answered
        if extra < 0:
            return f"{-extra:,} events MISSING"
        if extra > self.sent.cut_short_at_most:
            return f"{extra - self.sent.cut_short_at_most:,} events MORE than requests sent"
        return (
            f"one per answered request, plus {extra:,} for requests cut short "
            f"(at most {self.sent.cut_short_at_most:,} possible)"
        )


@dataclass
class Report:
    label: str
    started: str
    machine: list[tuple[str, str]]
    loads: list[Load]
    gateways: list[Target]
    results: dict[str, dict[str, WrkResult]] = field(default_factory=dict)  # load → target key
    features: dict[str, Features] = field(default_factory=dict)  # gateway target key
    profile: ProfileSummary | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[Target]:
        return [DIRECT, NGINX, *self.gateways]

    def record(self, load: Load, target: Target, result: WrkResult) -> None:
        self.results.setdefault(load.name, {})[target.key] = result
        if result.non_2xx_3xx or result.errors:
            self.notes.append(
                f"{load.name}/{target.title}: {result.non_2xx_3xx:,} non-2xx answers and "
                f"{result.errors:,} socket errors or timeouts out of {result.requests:,} "
                "requests — these figures do not measure the normal path (a refused request "
                "is cheaper)."
            )

    def to_json(self) -> str:
        return json.dumps(
            {
                "label": self.label,
                "started": self.started,
                "machine": dict(self.machine),
                "loads": [asdict(load) for load in self.loads],
                "targets": {target.key: target.title for target in self.targets},
                "results": {
                    load: {
                        target: {
                            **asdict(result),
                            "requests_per_second": result.requests_per_second,
                        }
                        for target, result in by_target.items()
                    }
                    for load, by_target in self.results.items()
                },
                "features": {key: asdict(features) for key, features in self.features.items()},
                "profile": self.profile.to_dict() if self.profile else None,
                "notes": self.notes,
            },
            indent=2,
        )

    def to_markdown(self) -> str:
        lines = [f"### {self.label} ({self.started})", ""]
        lines += ["| machine | |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.machine]
        lines += ["", *self._features()]
        for load in self.loads:
            if load.name in self.results:
                lines += ["", *self._load_table(load), "", *self._comparison(load)]
        lines += ["", *self._verdict()]
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        if self.profile is not None:
            lines += ["", *self.profile.to_markdown()]
        return "\n".join(lines) + "\n"

    def _features(self) -> list[str]:
        lines = [
            "Gateway features at work:",
            "",
            "- authentication (API key, verified once then cached) and routing: on",
            "- identity token (EdDSA JWT) sent with every forwarded request (how often it is "
            "signed anew is not observed here)",
        ]
        for gateway in self.gateways:
            if gateway.key in self.features:
                lines.append(f"- {gateway.title}:")
                lines += [f"  - {line}" for line in self.features[gateway.key].lines()]
        return lines

    def _load_table(self, load: Load) -> list[str]:
        by_target = self.results[load.name]
        lines = [
            f"**{load.name}** load: `{load.describe()}`",
            "",
            "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | non-2xx | errors |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for target in self.targets:
            if target.key in by_target:
                result = by_target[target.key]
                lines.append(
                    f"| {target.title} | {result.requests_per_second:,.0f} "
                    f"| {result.p50_ms:.2f} | {result.p90_us / 1000:.2f} "
                    f"| {result.p99_ms:.2f} | {result.p999_us / 1000:.2f} "
                    f"| {result.non_2xx_3xx} | {result.errors} |"
                )
        return lines

    def _measured_gateways(self, load_name: str) -> list[Target]:
        by_target = self.results.get(load_name, {})
        return [gateway for gateway in self.gateways if gateway.key in by_target]

    def _fastest_gateway(self, load_name: str) -> Target | None:
        by_target = self.results.get(load_name, {})
        return max(
            self._measured_gateways(load_name),
            key=lambda gateway: by_target[gateway.key].requests_per_second,
            default=None,
        )

    def _comparison(self, load: Load) -> list[str]:
        by_target = self.results[load.name]
        direct, nginx = by_target[DIRECT.key], by_target[NGINX.key]
        lines = [
            f"{gateway.title}: gateway/nginx req/s "
            f"**{by_target[gateway.key].requests_per_second / nginx.requests_per_second:.2f}**, "
            f"gateway/direct req/s "
            f"**{by_target[gateway.key].requests_per_second / direct.requests_per_second:.2f}**."
            for gateway in self._measured_gateways(load.name)
        ]
        best = self._fastest_gateway(load.name)
        if best is not None:
            gateway = by_target[best.key]
            lines += [
                "",
                f"Over direct, nginx adds p50 {nginx.p50_ms - direct.p50_ms:+.2f} ms, "
                f"p99 {nginx.p99_ms - direct.p99_ms:+.2f} ms; the best gateway row (highest "
                f"req/s), {best.title}, adds p50 {gateway.p50_ms - direct.p50_ms:+.2f} ms, "
                f"p99 {gateway.p99_ms - direct.p99_ms:+.2f} ms.",
            ]
        return lines

    def _verdict(self) -> list[str]:
        lines = ["Targets (issue 3, this 2-core machine), each from its best gateway row:", ""]
        saturated = self.results.get("saturated", {})
        fastest = self._fastest_gateway("saturated")
        if fastest is not None:
            rps = saturated[fastest.key].requests_per_second
            ratio = rps / saturated[NGINX.key].requests_per_second
            lines.append(
                f"- gateway throughput ≥ {TARGET_GATEWAY_RPS:,} req/s: {rps:,.0f} "
                f"({fastest.title}) — {_met(rps >= TARGET_GATEWAY_RPS)}"
            )
            lines.append(
                f"- gateway/nginx throughput ≥ {TARGET_GATEWAY_NGINX_RATIO}: {ratio:.2f} "
                f"({fastest.title}) — {_met(ratio >= TARGET_GATEWAY_NGINX_RATIO)}"
            )
        moderate = self.results.get("moderate", {})
        calmest = min(
            self._measured_gateways("moderate"),
            key=lambda gateway: moderate[gateway.key].p99_us,
            default=None,
        )
        if calmest is not None:
            added = moderate[calmest.key].p99_ms - moderate[DIRECT.key].p99_ms
            lines.append(
                f"- p99 added latency ≤ {TARGET_ADDED_P99_MS:g} ms at moderate load: "
                f"{added:.2f} ms ({calmest.title}, the lowest p99) — "
                f"{_met(added <= TARGET_ADDED_P99_MS)}"
            )
        return lines


def _met(condition: bool) -> str:
    return "met" if condition else "NOT met"


def worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct positive integers expected")
    return counts


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Direct upstream vs nginx proxy_pass vs the Tollgate gateway, one run.",
    )
    parser.add_argument("--seconds", type=int, default=12, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds before each run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads, saturated load")
    parser.add_argument("--connections", type=int, default=50, help="saturated load")
    parser.add_argument("--moderate-connections", type=int, default=4)
    parser.add_argument("--nginx-workers", default="auto", help="worker_processes of the proxy")
    parser.add_argument(
        "--gateway-workers",
        type=worker_counts,
        default="1,2",
        help="gateway rows: uvicorn workers of each (comma-separated, default 1,2)",
    )
    parser.add_argument(
        "--plan",
        default="enterprise",
        help="plan tier given to the benchmark organisation (its record in the keys schema); "
        "the default has no org-wide quota to refuse the load; '' keeps the signup default "
        "(free: 1,000 requests an hour)",
    )
    parser.add_argument(
        "--key-rate-limit",
        type=lambda text: json.loads(text) if text else None,
        default=UNREACHED_KEY_RATE_LIMIT,
        help="the benchmark key's own limits (JSON, as a key's `rate_limit`), so the limiter "
        f"spends tokens on every request; default {UNREACHED_KEY_RATE_LIMIT}; '' for none",
    )
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=10,
        help="py-spy recording time, on the gateway row with the fewest workers; 0: no profile",
    )
    parser.add_argument("--label", default="Gateway benchmark", help="title of the report")
    parser.add_argument("--markdown", type=Path, help="also write the report here (Markdown)")
    parser.add_argument("--json", type=Path, help="also write the figures here (JSON)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, configs)"
    )
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    loads = [
        Load(
            "saturated",
            arguments.threads,
            arguments.connections,
            arguments.seconds,
            arguments.warmup,
        ),
        Load("moderate", 1, arguments.moderate_connections, arguments.seconds, arguments.warmup),
    ]
    report = Report(
        label=arguments.label,
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=describe_machine(nginx=nginx_version(), wrk=wrk_version()),
        loads=loads,
        gateways=[gateway_target(workers) for workers in arguments.gateway_workers],
    )
    directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
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
    if arguments.json:
        arguments.json.write_text(report.to_json())
    return 0


def run(arguments: argparse.Namespace, report: Report, directory: Path) -> None:
    with cleanup_on_exit() as cleanup:
        upstream = cleanup.enter_context(Nginx.upstream(directory=directory, port=free_port()))
        proxy = cleanup.enter_context(
            Nginx.proxy(
                directory=directory,
                port=free_port(),
                upstream_port=upstream.port,
                workers=arguments.nginx_workers,
            )
        )
        progress("starting the stack (PostgreSQL, NATS, keys, gateway)")
        os.environ["TOLLGATE_GATEWAY_ROUTES_FILE"] = str(_routes_file(directory, upstream.url))
        stack = Stack(state_dir=directory / "stack", ports=Ports.free())
        info = stack.start()
        cleanup.callback(stack.stop)
        _prepare_benchmark_key(arguments, stack, info)
        # Each gateway row starts a gateway of its own; the stack's has done its part (signup).
        stack.processes["gateway"].stop()
        wrk = Wrk(directory)
        for target, origin in ((DIRECT, upstream.url), (NGINX, proxy.url)):
            _probe(origin + REQUEST_PATH, {})
            for load in report.loads:
                progress(f"{load.name}: {target.title} ({load.describe()})")
                report.record(load, target, wrk.measure(origin + REQUEST_PATH, load))
        rows = GatewayRows(report, stack, info, wrk, directory, keep_profile=arguments.keep)
        profiled = min(report.gateways, key=lambda gateway: gateway.gateway_workers)
        for gateway in report.gateways:
            profile_seconds = arguments.profile_seconds if gateway == profiled else 0
            report.features[gateway.key] = rows.measure(gateway, profile_seconds=profile_seconds)


def _prepare_benchmark_key(arguments: argparse.Namespace, stack: Stack, info: StackInfo) -> None:
    # A fresh state folder: the Stack has just signed the demo account up, and no gateway has
    # verified its key yet, so the first request below caches the key with these values.
    if arguments.plan:
        set_plan(stack, info.demo.organization_id, arguments.plan)
    if arguments.key_rate_limit:
        set_key_rate_limit(stack, info.demo.api_key, arguments.key_rate_limit)


class GatewayRows:
    """Measures gateway rows on one stack: each with its own gateway process(es), started with
    the row's worker count and stopped once the row is measured."""

    def __init__(
        self,
        report: Report,
        stack: Stack,
        info: StackInfo,
        wrk: Wrk,
        directory: Path,
        *,
        keep_profile: bool,
    ) -> None:
        self.report, self.stack, self.info = report, stack, info
        self.wrk, self.directory, self.keep_profile = wrk, directory, keep_profile
        self.url = info.gateway_url + REQUEST_PATH
        self.authorization = f"Bearer {info.demo.api_key}"

    @property
    def gateway(self) -> ManagedProcess:
        return self.stack.processes["gateway"]

    def measure(self, target: Target, *, profile_seconds: int) -> Features:
        features = Features(workers=target.gateway_workers)
        self._start(target)
        usage_before = _usage_messages(self.info.nats_url)
        features.rate_limit_policy = _probe(self.url, {"Authorization": self.authorization})
        features.sent.add_probe()
        for load in self.report.loads:
            progress(f"{load.name}: {target.title} ({load.describe()})")
            if load.warmup_seconds:
                self._run(load, load.warmup_seconds, features.sent)
            self.report.record(load, target, self._run(load, load.seconds, features.sent))
        if profile_seconds > 0:
            self._profile(target, profile_seconds, features.sent)
        if target.gateway_workers == 1:
            _read_gateway_counters(features, self.info.gateway_url)
        progress(f"stopping {target.title}: its spool drains to USAGE")
        self.gateway.stop()
        features.usage_events = _usage_difference(
            usage_before, _settled_usage_messages(self.info.nats_url)
        )
        return features

    def _start(self, target: Target) -> None:
        progress(f"starting {target.title}")
        os.environ[WORKERS_VARIABLE] = str(target.gateway_workers)
        self.gateway.start()
        self.gateway.wait_until_ready(self.info.gateway_url + "/readyz")

    def _run(self, load: Load, seconds: int, sent: SentRequests) -> WrkResult:
        result = self.wrk.run(self.url, load, seconds=seconds, authorization=self.authorization)
        sent.add(result, load)
        return result

    def _profile(self, target: Target, seconds: int, sent: SentRequests) -> None:
        several = target.gateway_workers > 1
        how = "`--subprocesses` on the supervisor: every worker" if several else "its one process"
        progress(f"profiling {target.title} with py-spy for {seconds} s ({how})")
        output = self.directory / f"{target.key}-profile.txt"
        saturated = self.report.loads[0]
        self.report.profile = record_profile(
            pid=_pid(self.gateway),
            subprocesses=several,
            subject=f"{target.title} ({how}; the only row profiled)",
            seconds=seconds,
            output=output,
            load=lambda duration: self._run(saturated, duration, sent),
        )
        if self.keep_profile and self.report.profile is not None:
            self.report.notes.append(f"raw py-spy stacks: {output}")


def _routes_file(directory: Path, upstream_url: str) -> Path:
    """An operator route, as an operator writes one: key required, default scopes and meter."""
    path = directory / "routes.toml"
    path.write_text(
        "[[routes]]\n"
        f'name = "{ROUTE_NAME}"\n'
        f'prefix = "{ROUTE_PREFIX}"\n'
        f'upstream = "{upstream_url}"\n'
        'meter = "api_requests"\n'
    )
    return path


def _probe(url: str, headers: dict[str, str]) -> str | None:
    """The target answers 200 with the upstream's body; returns its rate-limit policy header,
    if it sends one."""
    response = httpx.get(url, headers=headers, timeout=10)
    if response.status_code != 200 or response.text != UPSTREAM_BODY:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return response.headers.get("ratelimit-policy")


def _pid(process: ManagedProcess) -> int:
    # ManagedProcess keeps its Popen private; the launcher has no public pid accessor.
    popen: subprocess.Popen[bytes] | None = process._process
    if popen is None:
        raise RuntimeError(f"{process.name} is not running")
    return popen.pid


def _read_gateway_counters(features: Features, gateway_url: str) -> None:
    """Requests the gateway counted on the benchmark route, and its rate limiter's decisions;
    exact with one process only."""
    text = httpx.get(gateway_url + "/metrics", timeout=10).text
    features.route_requests_counted = counter_total(
        text, "tollgate_http_requests", route=ROUTE_NAME
    )
    features.rate_limit_decisions = {
        outcome: count
        for outcome in ("allowed", "refused", "local_lease")
        if (count := counter_total(text, "tollgate_gateway_rate_limit_decisions", outcome=outcome))
    }


def _usage_difference(before: int | None, after: int | None) -> int | None:
    if after is None:
        return None
    return after - (before or 0)


def _settled_usage_messages(nats_url: str) -> int | None:
    """The USAGE stream's message count once it stops moving (the gateway published its spool's
    tail as it stopped; this waits out any acknowledgement still on its way)."""
    previous, deadline = _usage_messages(nats_url), time.monotonic() + USAGE_SETTLE_SECONDS
    while True:
        time.sleep(1.0)
        count = _usage_messages(nats_url)
        if count == previous or time.monotonic() > deadline:
            return count
        previous = count


def _usage_messages(nats_url: str) -> int | None:
    """Messages in the USAGE stream; None if it does not exist (usage emission off)."""
    return asyncio.run(_stream_messages(nats_url, "USAGE"))


async def _stream_messages(nats_url: str, stream: str) -> int | None:
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(nats_url, connect_timeout=5)
    try:
        return int((await client.jetstream().stream_info(stream)).state.messages)
    except NotFoundError:
        return None
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(main())
