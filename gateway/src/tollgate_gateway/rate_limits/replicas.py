"""How many gateway replicas are alive: each one renews its own entry in a KV bucket whose
entries expire, and counts the entries. Lease sizes and the local fallback divide by this."""

import asyncio
import contextlib
import uuid

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

logger = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 5.0
ENTRY_TTL_SECONDS = 3 * HEARTBEAT_SECONDS


class ReplicaRegistry:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.replica_id = uuid.uuid4().hex
        # Until the first count, assume this replica is alone; the last good count is kept
        # through NATS outages, when it matters most (each replica's local share).
        self.count = 1

    @classmethod
    async def open(cls, js: JetStreamContext, *, bucket: str) -> "ReplicaRegistry":
        kv = await js.create_key_value(
            KeyValueConfig(
                bucket=bucket, history=1, ttl=ENTRY_TTL_SECONDS, storage=StorageType.MEMORY
            )
        )
        registry = cls(kv)
        await registry.heartbeat()
        return registry

    async def heartbeat(self) -> None:
        try:
            async with asyncio.timeout(HEARTBEAT_SECONDS):
                await self._kv.put(self.replica_id, b"")
                self.count = max(1, len(await self._kv.keys()))
        except nats.js.errors.NoKeysError:
            self.count = 1
        except (TimeoutError, nats.errors.Error, OSError) as error:
            logger.debug("replica heartbeat failed", error=str(error))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.heartbeat()

    async def leave(self) -> None:
        with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):
            await asyncio.wait_for(self._kv.purge(self.replica_id), 1.0)
