"""How long one rate-limit decision takes in the gateway's process, against real JetStream KV.

    make bench-limiter            # or: uv run python bench/limiter_decision.py --help

Times `RateLimiter.check` for a request with an org policy and two key policies (three counters,
the common shape), over many decisions: most find tokens in their leases (no network), a few
wait for a lease refill (one KV compare-and-set). Prints p50/p99/p99.9/max in microseconds for
both, so the common path and the refill path are seen side by side. Uses NATS from
TOLLGATE_NATS_URL, else an embedded server.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import nats

from tollgate_gateway.rate_limits.counters import SharedCounters
from tollgate_gateway.rate_limits.limiter import RateLimiter
from tollgate_gateway.rate_limits.policies import Policy
from tollgate_gateway.rate_limits.replicas import ReplicaRegistry
from tollgate_shared.embedded import EmbeddedNats


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--nats-url", help="default: TOLLGATE_NATS_URL, else embedded")
    return parser.parse_args()


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def row(name: str, durations: list[float]) -> str:
    values = sorted(durations)
    figures = [percentile(values, share) for share in (0.5, 0.99, 0.999)] + [values[-1]]
    cells = " | ".join(f"{value * 1e6:,.1f}" for value in figures)
    return f"| {name} | {len(values):,} | {cells} |"


async def measure(nats_url: str, decisions: int) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    bucket = f"BENCH_LIMITS_{uuid.uuid4().hex[:8]}"
    counters = await SharedCounters.open(js, bucket=bucket, timeout_seconds=1.0)
    replicas = await ReplicaRegistry.open(js, bucket=f"{bucket}_REPLICAS")
    limiter = RateLimiter(
        counters,
        replicas,
        max_lease=1000,
        idle_return_seconds=60,
        is_connected=lambda: client.is_connected,
    )
    org, key = uuid.uuid4(), uuid.uuid4()
    policies = [
        Policy(scope="org", subject=org, window=3600, quota=1_000_000_000),
        Policy(scope="key", subject=key, window=1, quota=1_000_000),
        Policy(scope="key", subject=key, window=86400, quota=1_000_000_000),
    ]
    local: list[float] = []
    refill: list[float] = []
    for _ in range(decisions):
        leases_before = _leases_taken(limiter)
        started = time.perf_counter()
        decision = await limiter.check(policies)
        elapsed = time.perf_counter() - started
        assert decision.allowed
        (refill if _leases_taken(limiter) != leases_before else local).append(elapsed)
    await limiter.close(2.0)
    await js.delete_key_value(bucket)
    await js.delete_key_value(f"{bucket}_REPLICAS")
    await client.close()

    print(f"{decisions:,} decisions, 3 policies each (org hour, key second, key day)\n")
    print("| decision | count | p50 µs | p99 µs | p99.9 µs | max µs |")
    print("|---|--:|--:|--:|--:|--:|")
    print(row("tokens in the lease (no network)", local))
    print(row("waited for a lease (KV compare-and-set)", refill))
    print(row("all", local + refill))
    print(f"\nmean of all: {statistics.fmean(local + refill) * 1e6:.1f} µs")


def _leases_taken(limiter: RateLimiter) -> int:
    """Tokens taken from the shared counters so far (a bench-only peek at the limiter)."""
    return sum(counter.taken for counter in limiter._counters.values())


def main() -> None:
    arguments = parse_arguments()
    with ExitStack() as stack:
        nats_url = arguments.nats_url or os.environ.get("TOLLGATE_NATS_URL")
        if not nats_url:
            store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nats-"))
            server = EmbeddedNats(Path(store))
            nats_url = server.start()
            stack.callback(server.stop)
        asyncio.run(measure(nats_url, arguments.decisions))


if __name__ == "__main__":
    main()
