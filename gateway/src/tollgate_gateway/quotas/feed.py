"""Keeps the entitlement states current: metering's events as they happen, its snapshot at
start, after every NATS reconnect (events may have been missed) and every resync interval.

The subscription is a plain core NATS one (JetStream publishes reach core subscribers too), made
before the first snapshot is asked for, so no change falls between the two; the states' versions
sort out the overlap. Metering being down never stops the gateway: it enforces what it holds,
logs one warning per outage and retries with a growing delay.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from tollgate_gateway.quotas.metrics import EVENT_APPLIED, EVENT_INVALID, EVENT_STALE
from tollgate_gateway.quotas.snapshot import MeteringClient, SnapshotUnavailable
from tollgate_gateway.quotas.states import EntitlementState, EntitlementStates
from tollgate_shared.events.envelope import CloudEvent

logger = structlog.get_logger(__name__)

ENTITLEMENT_EVENTS = "tollgate.metering.entitlement.>"
UPDATED = "tollgate.metering.entitlement.updated"
REMOVED = "tollgate.metering.entitlement.removed"
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 15.0


class EntitlementFeed:
    def __init__(
        self,
        states: EntitlementStates,
        metering: MeteringClient,
        *,
        resync_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.states = states
        self._metering = metering
        self._resync_seconds = resync_seconds
        self._clock = clock
        self._reload = asyncio.Event()
        self._subscription: Subscription | None = None
        self._outage_since: float | None = None  # monotonic time of the first failed load
        self.loads = 0  # snapshots merged so far
        self.loaded = False  # whether the last attempt to load one succeeded

    async def start(self, nats: Client) -> None:
        self._subscription = await nats.subscribe(ENTITLEMENT_EVENTS, cb=self._on_event)

    async def _on_event(self, message: Msg) -> None:
        if message.subject not in (UPDATED, REMOVED):
            return  # other entitlement events (thresholds...) are not for the gateway
        try:
            event = CloudEvent.from_json(message.data)
            state = EntitlementState.parse(event.data)
            if (state.status == "removed") != (message.subject == REMOVED):
                raise ValueError(f"status {state.status} in a {message.subject} event")
        except (ValidationError, ValueError) as error:
            EVENT_INVALID.inc()
            logger.warning(
                "unreadable entitlement event", subject=message.subject, error=str(error)
            )
            return
        if self.states.apply(state):
            EVENT_APPLIED.inc()
            logger.debug(
                "entitlement state",
                org_id=str(state.organization_id),
                meter=state.meter,
                status=state.status,
                version=state.version,
            )
        else:
            EVENT_STALE.inc()

    async def on_reconnected(self) -> None:
        self._reload.set()  # the loop reloads at once, without waiting for its interval

    async def load(self) -> bool:
        """Merge one snapshot; False (after logging the outage once) when metering fails."""
        mark = self.states.mark()
        try:
            snapshot = await self._metering.entitlement_snapshot()
        except SnapshotUnavailable as error:
            self.loaded = False
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                logger.warning(
                    "entitlement snapshot unavailable: enforcing the states held until metering "
                    "answers",
                    error=str(error),
                    held=self.states.flagged_count,
                )
            return False
        self.states.merge_snapshot(snapshot, mark=mark)
        self.states.prune(self._clock())
        self.loads += 1
        self.loaded = True
        if self._outage_since is not None:
            logger.info(
                "entitlement snapshot loaded again",
                outage_seconds=round(time.monotonic() - self._outage_since, 1),
            )
            self._outage_since = None
        return True

    async def run(self, *, loaded: bool) -> None:
        """Reload every resync interval, at once after a reconnect, and after a failure with a
        delay doubling up to RETRY_MAX_SECONDS (never more than the resync interval)."""
        retry = RETRY_FIRST_SECONDS
        while True:
            delay = self._resync_seconds if loaded else retry
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), delay)
            self._reload.clear()
            loaded = await self.load()
            ceiling = min(RETRY_MAX_SECONDS, self._resync_seconds)
            retry = RETRY_FIRST_SECONDS if loaded else min(retry * 2, ceiling)
