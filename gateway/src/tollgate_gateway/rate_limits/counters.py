"""The shared counters: how many tokens of a window every replica together has taken.

One JetStream KV entry per counter holds `<window start> <tokens allocated>`; replicas change it
with compare-and-set on the entry's revision, so no two can hand out the same token and the sum
of all allocations never exceeds the quota (ADR 0010). An entry from an earlier window counts
as zero. Entries live 25 hours (the longest window, plus margin) after their last change.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

ENTRY_TTL_SECONDS = 25 * 3600
T = TypeVar("T")


class CountersUnavailable(Exception):
    """The shared counters cannot be reached in time: decide locally (ADR 0010)."""


@dataclass(frozen=True)
class Allocation:
    allocated: int  # tokens of the window handed out by all replicas, after this change
    changed_by: int  # what this change added (negative when tokens were given back)


@dataclass
class _Seen:
    revision: int
    window_start: int
    allocated: int


class SharedCounters:
    def __init__(self, kv: KeyValue, *, timeout_seconds: float) -> None:
        self._kv, self._timeout = kv, timeout_seconds
        # Last revision written or read per counter: the common case updates without reading.
        self._seen: dict[str, _Seen] = {}

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, bucket: str, timeout_seconds: float
    ) -> "SharedCounters":
        kv = await js.create_key_value(
            KeyValueConfig(
                bucket=bucket, history=1, ttl=ENTRY_TTL_SECONDS, storage=StorageType.FILE
            )
        )
        return cls(kv, timeout_seconds=timeout_seconds)

    async def take(self, counter: str, window_start: int, size: Callable[[int], int]) -> Allocation:
        """Take `size(allocated)` more tokens (0 takes nothing and writes nothing)."""
        return await self._change(counter, window_start, size)

    async def give_back(self, counter: str, window_start: int, tokens: int) -> Allocation:
        """Return unspent tokens of that window; nothing if the entry has moved on to a newer
        one (those tokens were never part of it: subtracting would grant extra)."""
        return await self._change(
            counter,
            window_start,
            lambda allocated: -min(tokens, allocated),
            into_newer_window=False,
        )

    async def add(self, counter: str, window_start: int, tokens: int) -> Allocation:
        """Record tokens handed out while the counters were unreachable (may pass the quota)."""
        return await self._change(counter, window_start, lambda _: tokens)

    async def read(self, counter: str, window_start: int) -> int:
        seen = await self._read(counter)
        return _allocated_in(seen, window_start)

    def forget(self, counter: str) -> None:
        self._seen.pop(counter, None)

    async def _change(
        self,
        counter: str,
        window_start: int,
        delta_for: Callable[[int], int],
        *,
        into_newer_window: bool = True,
    ) -> Allocation:
        seen = self._seen.get(counter)
        while True:
            if seen is None:
                seen = await self._read(counter)
            if seen.window_start > window_start and not into_newer_window:
                return Allocation(allocated=seen.allocated, changed_by=0)
            allocated = _allocated_in(seen, window_start)
            delta = delta_for(allocated)
            if delta == 0:
                return Allocation(allocated=allocated, changed_by=0)
            # A newer window in the entry means this replica's clock is behind: count in it.
            window = max(window_start, seen.window_start)
            value = f"{window} {allocated + delta}".encode()
            try:
                revision = await self._call(self._kv.update(counter, value, last=seen.revision))
            except nats.js.errors.KeyWrongLastSequenceError:
                seen = None  # another replica changed it first: read and try again
                continue
            self._seen[counter] = _Seen(revision, window, allocated + delta)
            return Allocation(allocated=allocated + delta, changed_by=delta)

    async def _read(self, counter: str) -> _Seen:
        try:
            entry = await self._call(self._kv.get(counter))
        except nats.js.errors.KeyNotFoundError as error:
            # A deleted entry still has a revision to compare against; a missing one has 0.
            revision = error.entry.revision if error.entry and error.entry.revision else 0
            return _Seen(revision=revision, window_start=0, allocated=0)
        window, _, allocated = (entry.value or b"0 0").decode().partition(" ")
        return _Seen(entry.revision or 0, window_start=int(window), allocated=int(allocated))

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(operation, self._timeout)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            raise
        except (TimeoutError, nats.errors.Error, OSError) as error:
            raise CountersUnavailable(str(error) or type(error).__name__) from error


def _allocated_in(seen: _Seen, window_start: int) -> int:
    return seen.allocated if seen.window_start >= window_start else 0
