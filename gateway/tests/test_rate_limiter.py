"""The limiter against real JetStream KV counters: exact counts, shared quotas, windows, leases
given back, restarts, and local decisions while the counters are unreachable."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import nats
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tollgate_gateway.rate_limits.counters import CountersUnavailable, SharedCounters
from tollgate_gateway.rate_limits.limiter import RateLimiter
from tollgate_gateway.rate_limits.policies import Policy

START = 1_700_000_000.0  # a whole day boundary is far: START is 22:13:20 UTC


class FakeReplicas:
    def __init__(self, count: int) -> None:
        self.count = count


class FlakyCounters(SharedCounters):
    """Real counters that can be made unreachable."""

    down = False

    async def _call(self, operation: Awaitable[Any]) -> Any:
        if self.down:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise CountersUnavailable("switched off by the test")
        return await super()._call(operation)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


@pytest.fixture
def bucket() -> str:
    return f"TEST_LIMITS_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_limiter(js: Any, bucket: str) -> Any:
    connected = {"value": True}

    async def make(
        *, replicas: int = 1, clock: Clock | None = None, idle_return: float = 60.0
    ) -> tuple[RateLimiter, FlakyCounters]:
        # The outage backoff is shortened so a test can wait it out.
        counters = await FlakyCounters.open(js, bucket=bucket, timeout_seconds=2.0)
        limiter = RateLimiter(
            counters,
            FakeReplicas(replicas),  # type: ignore[arg-type]
            max_lease=1000,
            idle_return_seconds=idle_return,
            is_connected=lambda: connected["value"],
            clock=clock or Clock(),
            outage_backoff_seconds=0.05,
        )
        return limiter, counters

    make.connected = connected  # type: ignore[attr-defined]
    return make


def policy(quota: int, window: int = 3600, scope: str = "key", subject: uuid.UUID | None = None):
    return Policy(scope=scope, subject=subject or uuid.uuid4(), window=window, quota=quota)  # type: ignore[arg-type]


async def spend(limiter: RateLimiter, policies: list[Policy], times: int) -> list[bool]:
    return [(await limiter.check(policies)).allowed for _ in range(times)]


async def test_spends_exactly_the_quota_and_counts_down(make_limiter):
    limiter, _ = await make_limiter()
    hourly = policy(5)
    remaining = []
    for _ in range(5):
        decision = await limiter.check([hourly])
        assert decision.allowed
        remaining.append(decision.states[0].remaining)
    assert remaining == [4, 3, 2, 1, 0]
    refused = await limiter.check([hourly])
    assert not refused.allowed
    assert refused.violated == (hourly,)
    assert refused.states[0].remaining == 0
    # 22:13:20 → the hour resets at 23:00:00
    assert refused.retry_after_seconds == refused.states[0].reset_seconds == 2800


async def test_replicas_sharing_a_quota_never_exceed_it_and_use_all_of_it(make_limiter):
    limiters = [(await make_limiter(replicas=4))[0] for _ in range(4)]
    minute = policy(300, window=60)

    async def client(index: int) -> list[bool]:
        return await spend(limiters[index % 4], [minute], 100)

    results = await asyncio.gather(*(client(index) for index in range(30)))  # 3,000 requests
    assert sum(sum(result) for result in results) == 300


async def test_a_new_window_gives_a_new_allowance(make_limiter):
    clock = Clock()
    limiter, _ = await make_limiter(clock=clock)
    second = policy(3, window=1)
    assert await spend(limiter, [second], 4) == [True, True, True, False]
    clock.now += 1
    assert await spend(limiter, [second], 4) == [True, True, True, False]


async def test_a_refusal_spends_nothing_from_the_other_policies(make_limiter):
    limiter, _ = await make_limiter()
    org = uuid.uuid4()
    org_hour = policy(100, scope="org", subject=org)
    key_minute = policy(2, window=60)
    assert await spend(limiter, [org_hour, key_minute], 5) == [True, True, False, False, False]
    states = await limiter.peek([org_hour])
    assert states[0].remaining == 98


async def test_org_quota_is_shared_by_its_keys(make_limiter):
    limiter, _ = await make_limiter()
    org = uuid.uuid4()
    org_hour = policy(4, scope="org", subject=org)
    first_key, second_key = [org_hour, policy(100)], [org_hour, policy(100)]
    assert await spend(limiter, first_key, 3) == [True] * 3
    assert await spend(limiter, second_key, 2) == [True, False]
    assert (await limiter.check(first_key)).violated == (org_hour,)


async def test_idle_leases_go_back_to_the_other_replicas(make_limiter):
    first, _ = await make_limiter(idle_return=0.05)
    second, _ = await make_limiter()
    hourly = policy(1000)
    assert await spend(first, [hourly], 1) == [True]  # takes a lease of 500
    await asyncio.sleep(0.1)
    await first.tidy()
    assert sum(await spend(second, [hourly], 1000)) == 999


async def test_a_restart_hands_out_no_fresh_allowance(make_limiter):
    before, _ = await make_limiter()
    hourly = policy(10)
    assert await spend(before, [hourly], 6) == [True] * 6
    await before.close(timeout_seconds=2)  # gives its unspent lease back
    after, _ = await make_limiter()
    assert (await after.peek([hourly]))[0].remaining == 4
    assert await spend(after, [hourly], 5) == [True] * 4 + [False]


async def test_a_crash_loses_at_most_the_unspent_lease_never_grants_more(make_limiter):
    crashed, _ = await make_limiter()
    hourly = policy(10)
    assert await spend(crashed, [hourly], 2) == [True] * 2  # its lease was 5; 3 are lost
    after, _ = await make_limiter()
    assert sum(await spend(after, [hourly], 10)) == 5


def fallback_gauge() -> float:
    return REGISTRY.get_sample_value("tollgate_gateway_rate_limit_local_fallback") or 0.0


async def test_outage_falls_back_to_a_local_share_logged_once_then_converges(make_limiter):
    limiter, counters = await make_limiter(replicas=4)
    hourly = policy(400)
    counters.down = True
    with capture_logs() as logs:
        allowed = sum(await spend(limiter, [hourly], 150))
    assert allowed == 100  # its share: 400 / 4 replicas
    assert fallback_gauge() == 1
    warnings = [log for log in logs if "decided locally" in log["event"]]
    assert len(warnings) == 1

    counters.down = False
    await asyncio.sleep(0.1)  # the backoff after the last failed call
    await limiter.tidy()  # records what it granted alone, and leaves local mode
    assert fallback_gauge() == 0
    assert await counters.read(hourly.counter, int(START // 3600) * 3600) == 100
    # Back on the shared counters: the other 300 are there for everyone, not one more.
    other, _ = await make_limiter(replicas=4)
    assert sum(await spend(other, [hourly], 400)) == 300


async def test_nats_disconnected_decides_locally_without_waiting(make_limiter):
    limiter, counters = await make_limiter(replicas=2)
    make_limiter.connected["value"] = False
    counters.down = True
    hourly = policy(10)
    assert sum(await spend(limiter, [hourly], 10)) == 5


async def test_a_lease_given_back_at_shutdown_never_counts_in_the_next_window(make_limiter):
    clock = Clock()
    minute = policy(100, window=60)
    leaving, _ = await make_limiter(replicas=2, clock=clock)
    assert await spend(leaving, [minute], 1) == [True]  # holds the rest of a lease in minute W
    clock.now += 60
    busy, _ = await make_limiter(replicas=2, clock=clock)
    assert sum(await spend(busy, [minute], 150)) == 100  # minute W+1 used up
    await leaving.close(timeout_seconds=2)  # its W tokens must not free any of W+1's
    newcomer, _ = await make_limiter(replicas=2, clock=clock)
    assert sum(await spend(newcomer, [minute], 10)) == 0


async def test_grants_made_alone_are_recorded_once_when_tidy_and_a_refill_race(make_limiter):
    limiter, counters = await make_limiter(replicas=2)
    hourly = policy(6)
    counters.down = True
    assert await spend(limiter, [hourly], 4) == [True, True, True, False]  # its share: 3
    counters.down = False
    await asyncio.sleep(0.6)  # past the backoff and the recheck of a used-up quota
    _, decision = await asyncio.gather(limiter.tidy(), limiter.check([hourly]))
    assert decision.allowed  # the 3 granted alone were recorded once: 3 of 6 remain shared
    window = int(START // 3600) * 3600
    assert await counters.read(hourly.counter, window) == 4  # 3 recorded + this lease of 1
    other, _ = await make_limiter(replicas=2)
    assert sum(await spend(other, [hourly], 6)) == 2  # 3 + 1 + 2: the quota, exactly
