"""Rate-limit decisions from local leases of the shared counters (ADR 0010).

Each replica takes tokens from a shared counter in leases and spends them locally, so a request
costs no network call unless its lease ran dry. Leases are large while the window is far from
its quota and shrink to one token near it, so the replicas together never hand out more than
the quota, and a replica that needs a token gets one as long as any is left. Unused leases go
back after a short idle time and at shutdown.

When the shared counters cannot be reached, each replica decides alone with its share of the
quota (quota / replicas alive), and adds what it handed out to the shared counters once they
answer again.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from tollgate_gateway.rate_limits.counters import CountersUnavailable, SharedCounters
from tollgate_gateway.rate_limits.metrics import (
    ALLOWED,
    LEASES,
    LOCAL_FALLBACK,
    LOCAL_LEASE,
    REFUSED,
)
from tollgate_gateway.rate_limits.policies import Policy
from tollgate_gateway.rate_limits.replicas import ReplicaRegistry

logger = structlog.get_logger(__name__)

# A counter found exhausted is asked again after this long (tokens may have been given back);
# in between, refusals are local.
EXHAUSTED_RECHECK_SECONDS = 0.5
# After a failed call to the shared counters, decide locally this long before trying again.
OUTAGE_BACKOFF_SECONDS = 1.0
MAINTENANCE_SECONDS = 0.5


@dataclass
class _Counter:
    policy: Policy
    window_start: int = -1
    lease: int = 0  # tokens this replica may still spend in this window
    taken: int = 0  # tokens this replica took in this window (leases and local grants)
    allocated_seen: int = 0  # all replicas' allocation when this replica last asked
    last_grant: int = 0
    exhausted_at: float | None = None  # monotonic time the quota was found used up
    unrecorded: int = 0  # granted locally during an outage, not yet added to the shared counter
    used_at: float = 0.0
    refill: "asyncio.Future[None] | None" = field(default=None, repr=False)

    def roll(self, window_start: int) -> None:
        # Forward only: a caller holding an older time (after an await) must not reset a
        # counter that already lives in the next window.
        if window_start > self.window_start:
            self.window_start, self.lease, self.taken = window_start, 0, 0
            self.allocated_seen, self.last_grant, self.unrecorded = 0, 0, 0
            self.exhausted_at = None

    def exhausted(self, now: float) -> bool:
        return self.exhausted_at is not None and now - self.exhausted_at < EXHAUSTED_RECHECK_SECONDS

    def remaining(self) -> int:
        """Exact on a single replica; across replicas, others' unspent leases count as spent."""
        return max(0, self.policy.quota - max(self.allocated_seen, self.taken) + self.lease)


@dataclass(frozen=True)
class PolicyState:
    policy: Policy
    remaining: int
    reset_seconds: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    states: tuple[PolicyState, ...]
    violated: tuple[Policy, ...] = ()

    @property
    def retry_after_seconds(self) -> int:
        """Every violated window must have reset before a retry can pass."""
        return max((s.reset_seconds for s in self.states if s.policy in self.violated), default=0)


UNLIMITED = Decision(allowed=True, states=())


class RateLimiter:
    def __init__(
        self,
        counters: SharedCounters,
        replicas: ReplicaRegistry,
        *,
        max_lease: int,
        idle_return_seconds: float,
        is_connected: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        outage_backoff_seconds: float = OUTAGE_BACKOFF_SECONDS,
    ) -> None:
        self._shared, self._replicas = counters, replicas
        self._max_lease, self._idle_return = max_lease, idle_return_seconds
        self._is_connected, self._clock = is_connected, clock
        self._counters: dict[str, _Counter] = {}
        self._outage_backoff = outage_backoff_seconds
        self._local_until = 0.0  # monotonic; decide locally until then
        self._local = False
        self._disconnected = False  # local because NATS itself was gone (not merely slow)

    # -- decisions -----------------------------------------------------------------------

    async def check(self, policies: Sequence[Policy]) -> Decision:
        """Spend one token of every policy, or none if any is used up."""
        if not policies:
            return UNLIMITED
        now = self._clock()
        counters = [self._counter(policy, now) for policy in policies]
        while True:
            monotonic = time.monotonic()
            dry = [counter for counter in counters if counter.lease == 0]
            if not dry:
                for counter in counters:
                    counter.lease -= 1
                    counter.used_at = monotonic
                    self._prefetch_if_low(counter)
                ALLOWED.inc()
                return Decision(allowed=True, states=self._states(counters, now))
            violated = tuple(counter.policy for counter in dry if counter.exhausted(monotonic))
            if violated:
                REFUSED.inc()
                states = self._states(counters, now)
                return Decision(allowed=False, states=states, violated=violated)
            # Each refill either grants tokens or finds the quota used up, so this ends.
            # Shielded: a client hanging up must not cancel a refill other requests wait on.
            await asyncio.gather(*(asyncio.shield(self._refill(counter)) for counter in dry))

    async def peek(self, policies: Sequence[Policy]) -> tuple[PolicyState, ...]:
        """What remains of each policy, spending nothing (asks the shared counters for counters
        this replica has not used yet)."""
        now = self._clock()
        counters = [self._counter(policy, now) for policy in policies]
        for counter in counters:
            if counter.last_grant == 0 and counter.exhausted_at is None and not self._local:
                with contextlib.suppress(CountersUnavailable):
                    counter.allocated_seen = await self._shared.read(
                        counter.policy.counter, counter.window_start
                    )
        return self._states(counters, now)

    def _window_start(self, policy: Policy) -> int:
        return int(self._clock() // policy.window) * policy.window

    def _counter(self, policy: Policy, now: float) -> _Counter:
        counter = self._counters.get(policy.counter)
        if counter is None:
            counter = self._counters[policy.counter] = _Counter(policy)
        counter.policy = policy  # the quota may have changed with the plan
        counter.roll(int(now // policy.window) * policy.window)
        return counter

    def _states(self, counters: list[_Counter], now: float) -> tuple[PolicyState, ...]:
        return tuple(
            PolicyState(
                policy=counter.policy,
                remaining=counter.remaining(),
                reset_seconds=max(1, math.ceil(counter.window_start + counter.policy.window - now)),
            )
            for counter in counters
        )

    # -- leases --------------------------------------------------------------------------

    def _refill(self, counter: _Counter) -> "asyncio.Future[None]":
        # One refill per counter at a time; every request waiting on it shares the result.
        if counter.refill is None or counter.refill.done():
            counter.refill = asyncio.ensure_future(self._take_lease(counter))
        return counter.refill

    def _prefetch_if_low(self, counter: _Counter) -> None:
        idle = counter.refill is None or counter.refill.done()
        if idle and 0 < counter.lease <= counter.last_grant // 4 and counter.exhausted_at is None:
            # Fetched ahead, so the requests that follow find tokens without waiting.
            self._refill(counter).add_done_callback(lambda future: future.exception())

    async def _take_lease(self, counter: _Counter) -> None:
        window_start = counter.window_start
        if not self._is_connected():
            self._disconnected = True
            self._enter_local_mode("NATS is disconnected")
        if self._deciding_locally():
            self._grant_locally(counter)
            return
        try:
            await self._record_local_grants(counter)
            allocation = await self._shared.take(
                counter.policy.counter,
                window_start,
                lambda allocated: self._lease_size(counter, allocated),
            )
        except CountersUnavailable as error:
            self._enter_local_mode(str(error))
            self._grant_locally(counter)
            return
        self._leave_local_mode()
        LEASES.inc()
        if counter.window_start != window_start:
            return  # the window rolled while waiting: those tokens belonged to the old one
        counter.allocated_seen = allocation.allocated
        if allocation.changed_by > 0:
            counter.lease += allocation.changed_by
            counter.taken += allocation.changed_by
            counter.last_grant = allocation.changed_by
            counter.exhausted_at = None
        else:
            counter.exhausted_at = time.monotonic()

    def _lease_size(self, counter: _Counter, allocated: int) -> int:
        free = counter.policy.quota - allocated
        if free <= 0:
            return 0
        # Half of an even share of what is left: leases shrink as the quota runs out, down to
        # one token, so no replica sits on tokens another one needs.
        share = free // (2 * self._replicas.count)
        return max(1, min(share, self._max_lease))

    # -- local fallback ------------------------------------------------------------------

    def _deciding_locally(self) -> bool:
        return not self._is_connected() or time.monotonic() < self._local_until

    def _grant_locally(self, counter: _Counter) -> None:
        share = math.ceil(counter.policy.quota / self._replicas.count)
        grant = max(0, share - counter.taken)
        LOCAL_LEASE.inc()
        if grant == 0:
            counter.exhausted_at = time.monotonic()
            return
        counter.lease += grant
        counter.taken += grant
        counter.unrecorded += grant
        counter.last_grant = grant
        counter.exhausted_at = None

    async def _record_local_grants(self, counter: _Counter) -> None:
        # Taken before the await: tidy and a refill may both get here, each must send it once.
        tokens, counter.unrecorded = counter.unrecorded, 0
        if not tokens:
            return
        try:
            await self._shared.add(counter.policy.counter, counter.window_start, tokens)
        except CountersUnavailable:
            counter.unrecorded += tokens
            raise

    def _enter_local_mode(self, reason: str) -> None:
        self._local_until = time.monotonic() + self._outage_backoff
        if not self._local:
            self._local = True
            LOCAL_FALLBACK.set(1)
            logger.warning(
                "rate limits decided locally: shared counters unreachable",
                reason=reason,
                replicas=self._replicas.count,
            )

    def _leave_local_mode(self) -> None:
        if self._local:
            self._local = False
            LOCAL_FALLBACK.set(0)
            logger.info("rate limits shared again across replicas")

    # -- upkeep --------------------------------------------------------------------------

    async def run(self) -> None:
        """Give back idle leases, record local grants after an outage, forget idle counters."""
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            await self.tidy()

    async def tidy(self) -> None:
        if self._disconnected and self._is_connected():
            # NATS is back: try the shared counters at once. After timeouts (NATS slow, not
            # gone) the backoff runs its course instead, so requests do not keep waiting on it.
            self._disconnected, self._local_until = False, 0.0
        if self._deciding_locally():
            return
        for name, counter in list(self._counters.items()):
            # Read per counter: the awaits below can cross a window boundary.
            counter.roll(self._window_start(counter.policy))
            idle = time.monotonic() - counter.used_at
            busy = counter.refill is not None and not counter.refill.done()
            try:
                if counter.unrecorded and not busy:
                    await self._record_local_grants(counter)
                    self._leave_local_mode()
                if counter.lease and idle > self._idle_return and not busy:
                    await self._give_back(counter)
            except CountersUnavailable as error:
                self._enter_local_mode(str(error))
                return
            if idle > max(60.0, self._idle_return) and not counter.lease and not busy:
                del self._counters[name]
                self._shared.forget(name)

    async def _give_back(self, counter: _Counter) -> None:
        # The lease leaves now (no request may spend it while it is on its way back); `taken`
        # drops only once the counter has it: a failed return stays counted as taken here, as
        # it may still be in the shared count.
        tokens, counter.lease = counter.lease, 0
        allocation = await self._shared.give_back(
            counter.policy.counter, counter.window_start, tokens
        )
        counter.taken += allocation.changed_by  # negative: what the counter took back
        counter.allocated_seen = allocation.allocated

    async def close(self, timeout_seconds: float) -> None:
        """Give every unspent lease back, so a restart leaves the others their tokens."""
        refills = [c.refill for c in self._counters.values() if c.refill and not c.refill.done()]
        for refill in refills:
            refill.cancel()  # no new lease while giving leases back
        await asyncio.gather(*refills, return_exceptions=True)
        with contextlib.suppress(TimeoutError, CountersUnavailable):
            async with asyncio.timeout(timeout_seconds):
                for counter in list(self._counters.values()):
                    counter.roll(self._window_start(counter.policy))  # old windows: nothing
                    if counter.unrecorded:
                        await self._record_local_grants(counter)
                    if counter.lease and not self._deciding_locally():
                        await self._give_back(counter)
