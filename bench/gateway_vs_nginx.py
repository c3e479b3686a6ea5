"""The gateway against nginx and against no proxy at all, under the same load, in one run.

    make bench-gateway                      # installs wrk and nginx when missing, then this
    uv run python bench/gateway_vs_nginx.py --help

Three targets serve the same tiny response from the same upstream:
  direct   the upstream itself: nginx answering `return 200 '{...}'` from one worker. A static
           nginx answer costs a few microseconds, so the upstream never bounds the proxies in
           front of it (a Python upstream would cap all three targets at its own speed).
  nginx    a second nginx with `proxy_pass` (upstream keep-alive, access log on, as the
           gateway logs every request too), `worker_processes auto`.
  gateway  the Tollgate gateway, started with the whole stack exactly as `make dev` starts it
           (`Stack`, embedded PostgreSQL and NATS, keys service), called with a valid API key
           on an operator route to the same upstream. Whatever the gateway does per request by
           default is on: authentication, routing, identity token, rate limiting and usage
           emission. The report says which of them were seen at work.

The benchmark key carries its own rate limits, so high that the load never exhausts them
(`--key-rate-limit`), and its organisation is on the unlimited `enterprise` plan (`--plan`): the
limiter spends a token of every policy on every request, as in production, without refusing any.

Two loads: saturated (many connections: throughput) and moderate (a few connections: the
latency a proxy adds when it is not queueing). A py-spy profile of the gateway under the
saturated load follows, summarised by where the time goes.

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

from tollgate_local.stack import Ports, Stack, StackInfo
from tollgate_shared.embedded import free_port

ROUTE_NAME = "bench"
ROUTE_PREFIX = "/api/bench"
REQUEST_PATH = ROUTE_PREFIX + "/hello"
TARGETS = ("direct", "nginx", "gateway")
TARGET_TITLES = {
    "direct": "direct (upstream nginx `return 200`)",
    "nginx": "nginx `proxy_pass`",
    "gateway": "Tollgate gateway (API key)",
}
# The targets for this 2-core machine.
TARGET_GATEWAY_RPS = 5000
TARGET_ADDED_P99_MS = 5.0
TARGET_GATEWAY_NGINX_RATIO = 0.5
# High enough that no load here exhausts them (1,000,000 is the most a key may have per second).
UNREACHED_KEY_RATE_LIMIT = '{"per_second": 1000000, "per_hour": 1000000000}'


@dataclass
class Features:
    """What the gateway was seen doing per request, beyond authentication and routing."""

    rate_limit_policy: str | None = None
    rate_limit_decisions: dict[str, int] = field(default_factory=dict)  # outcome → count
    usage_events: int | None = None  # None: no USAGE stream
    gateway_requests_handled: int | None = None

    def lines(self) -> list[str]:
        return [
            f"requests the gateway counted on the route during the run: {self._handled()}",
            "authentication (API key, verified once then cached) and routing: on",
            "identity token (EdDSA JWT) sent with every forwarded request (how often it is "
            "signed anew is not observed here)",
            f"rate limiting: {self._rate_limiting()}",
            f"usage emission: {self._usage()}",
        ]

    def _handled(self) -> str:
        if self.gateway_requests_handled is None:
            return "unknown"
        return f"{self.gateway_requests_handled:,}"

    def _rate_limiting(self) -> str:
        if not self.rate_limit_policy:
            return "not seen (no `RateLimit-Policy` header on the probe's response)"
        decided = ", ".join(
            f"{count:,} {outcome}" for outcome, count in sorted(self.rate_limit_decisions.items())
        )
        return (
            f"on (`RateLimit-Policy: {self.rate_limit_policy}` on the probe's response; "
            f"limiter decisions: {decided or 'none counted'})"
        )

    def _usage(self) -> str:
        if self.usage_events is None:
            return "not seen (no `USAGE` stream in JetStream)"
        return (
            f"on ({self.usage_events:,} events in `USAGE` for "
            f"{self.gateway_requests_handled or 0:,} requests the gateway handled on the route)"
        )


@dataclass
class Report:
    label: str
    started: str
    machine: list[tuple[str, str]]
    loads: list[Load]
    results: dict[str, dict[str, WrkResult]] = field(default_factory=dict)
    features: Features = field(default_factory=Features)
    profile: ProfileSummary | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "label": self.label,
                "started": self.started,
                "machine": dict(self.machine),
                "loads": [asdict(load) for load in self.loads],
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
                "features": asdict(self.features),
                "profile": self.profile.to_dict() if self.profile else None,
                "notes": self.notes,
            },
            indent=2,
        )

    def to_markdown(self) -> str:
        lines = [f"### {self.label} ({self.started})", ""]
        lines += ["| machine | |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.machine]
        lines += ["", "Gateway features at work:", ""]
        lines += [f"- {line}" for line in self.features.lines()]
        for load in self.loads:
            by_target = self.results.get(load.name, {})
            if not by_target:
                continue
            lines += ["", f"**{load.name}** load: `{load.describe()}`", ""]
            lines += [
                "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | non-2xx | errors |",
                "|---|--:|--:|--:|--:|--:|--:|--:|",
            ]
            for target in TARGETS:
                if target in by_target:
                    result = by_target[target]
                    lines.append(
                        f"| {TARGET_TITLES[target]} | {result.requests_per_second:,.0f} "
                        f"| {result.p50_ms:.2f} | {result.p90_us / 1000:.2f} "
                        f"| {result.p99_ms:.2f} | {result.p999_us / 1000:.2f} "
                        f"| {result.non_2xx_3xx} | {result.errors} |"
                    )
            lines += ["", *self._comparison(by_target)]
        lines += ["", *self._verdict()]
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        if self.profile is not None:
            lines += ["", *self.profile.to_markdown()]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _comparison(by_target: dict[str, WrkResult]) -> list[str]:
        direct, nginx, gateway = (by_target.get(target) for target in TARGETS)
        parts = []
        if gateway and nginx:
            ratio = gateway.requests_per_second / nginx.requests_per_second
            parts.append(f"gateway/nginx req/s **{ratio:.2f}**")
        if gateway and direct:
            ratio = gateway.requests_per_second / direct.requests_per_second
            parts.append(f"gateway/direct req/s **{ratio:.2f}**")
        for name, proxy in (("nginx", nginx), ("gateway", gateway)):
            if proxy and direct:
                parts.append(
                    f"{name} adds p50 {proxy.p50_ms - direct.p50_ms:+.2f} ms, "
                    f"p99 {proxy.p99_ms - direct.p99_ms:+.2f} ms over direct"
                )
        return ["; ".join(parts) + "."] if parts else []

    def _verdict(self) -> list[str]:
        saturated = self.results.get("saturated", {})
        moderate = self.results.get("moderate", {})
        lines = ["Targets (issue 3, this 2-core machine):", ""]
        if "gateway" in saturated:
            rps = saturated["gateway"].requests_per_second
            lines.append(
                f"- gateway throughput ≥ {TARGET_GATEWAY_RPS:,} req/s: {rps:,.0f} "
                f"— {'met' if rps >= TARGET_GATEWAY_RPS else 'NOT met'}"
            )
        if "gateway" in moderate and "direct" in moderate:
            added = moderate["gateway"].p99_ms - moderate["direct"].p99_ms
            lines.append(
                f"- p99 added latency ≤ {TARGET_ADDED_P99_MS:g} ms at moderate load: "
                f"{added:.2f} ms — {'met' if added <= TARGET_ADDED_P99_MS else 'NOT met'}"
            )
        if "gateway" in saturated and "nginx" in saturated:
            ratio = (
                saturated["gateway"].requests_per_second / saturated["nginx"].requests_per_second
            )
            lines.append(
                f"- gateway/nginx throughput ≥ {TARGET_GATEWAY_NGINX_RATIO}: {ratio:.2f} "
                f"— {'met' if ratio >= TARGET_GATEWAY_NGINX_RATIO else 'NOT met'}"
            )
        return lines


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
        "--profile-seconds", type=int, default=10, help="py-spy recording time; 0: no profile"
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
        # A fresh state folder: the Stack has just signed the demo account up, and no gateway has
        # verified its key yet, so the first request below caches the key with these values.
        if arguments.plan:
            set_plan(stack, info.demo.organization_id, arguments.plan)
        if arguments.key_rate_limit:
            set_key_rate_limit(stack, info.demo.api_key, arguments.key_rate_limit)
        authorization = f"Bearer {info.demo.api_key}"
        urls = {
            "direct": upstream.url + REQUEST_PATH,
            "nginx": proxy.url + REQUEST_PATH,
            "gateway": info.gateway_url + REQUEST_PATH,
        }
        report.features.rate_limit_policy = _probe(urls, authorization)
        wrk = Wrk(directory)
        for load in report.loads:
            report.results[load.name] = {}
            for target in TARGETS:
                progress(f"{load.name}: {target} ({load.describe()})")
                result = wrk.measure(
                    urls[target],
                    load,
                    authorization=authorization if target == "gateway" else "",
                )
                report.results[load.name][target] = result
                _note_failures(report, load, target, result)
        if arguments.profile_seconds > 0:
            progress(f"profiling the gateway with py-spy for {arguments.profile_seconds} s")
            report.profile = record_profile(
                pid=_gateway_pid(stack),
                seconds=arguments.profile_seconds,
                output=directory / "gateway-profile.txt",
                load=lambda seconds: wrk.run(
                    urls["gateway"], report.loads[0], seconds=seconds, authorization=authorization
                ),
            )
            if arguments.keep and report.profile is not None:
                report.notes.append(f"raw py-spy stacks: {directory / 'gateway-profile.txt'}")
        _read_gateway_counters(report.features, info)
        report.features.usage_events = asyncio.run(
            _usage_events(info.nats_url, report.features.gateway_requests_handled)
        )


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


def _probe(urls: dict[str, str], authorization: str) -> str | None:
    """Each target answers 200 with the upstream's body; returns the gateway's rate-limit policy
    header, if it sends one."""
    policy = None
    with httpx.Client(timeout=10) as client:
        for target, url in urls.items():
            headers = {"Authorization": authorization} if target == "gateway" else {}
            response = client.get(url, headers=headers)
            if response.status_code != 200 or response.text != UPSTREAM_BODY:
                raise RuntimeError(
                    f"{target} answered {response.status_code}: {response.text[:300]}"
                )
            if target == "gateway":
                policy = response.headers.get("ratelimit-policy")
    return policy


def _note_failures(report: Report, load: Load, target: str, result: WrkResult) -> None:
    if result.non_2xx_3xx or result.errors:
        report.notes.append(
            f"{load.name}/{target}: {result.non_2xx_3xx:,} non-2xx answers and "
            f"{result.errors:,} socket errors or timeouts out of {result.requests:,} requests — "
            "these figures do not measure the normal path (a refused request is cheaper)."
        )


def _gateway_pid(stack: Stack) -> int:
    # ManagedProcess keeps its Popen private; the launcher has no public pid accessor.
    process: subprocess.Popen[bytes] | None = stack.processes["gateway"]._process
    if process is None:
        raise RuntimeError("the gateway is not running")
    return process.pid


def _read_gateway_counters(features: Features, info: StackInfo) -> None:
    """Requests the gateway counted on the benchmark route, and its rate limiter's decisions."""
    text = httpx.get(info.gateway_url + "/metrics", timeout=10).text
    features.gateway_requests_handled = counter_total(
        text, "tollgate_http_requests", route=ROUTE_NAME
    )
    features.rate_limit_decisions = {
        outcome: count
        for outcome in ("allowed", "refused", "local_lease")
        if (count := counter_total(text, "tollgate_gateway_rate_limit_decisions", outcome=outcome))
    }


async def _usage_events(nats_url: str, expected: int) -> int | None:
    """Messages in the USAGE stream, once the gateway's batches have settled; None if the
    stream does not exist (usage emission not built, or off)."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(nats_url, connect_timeout=5)
    try:
        jetstream = client.jetstream()
        previous, deadline = -1, time.monotonic() + 15
        while True:
            try:
                count = (await jetstream.stream_info("USAGE")).state.messages
            except NotFoundError:
                return None
            if count >= expected or count == previous or time.monotonic() > deadline:
                return int(count)
            previous = count
            await asyncio.sleep(1.0)
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(main())
