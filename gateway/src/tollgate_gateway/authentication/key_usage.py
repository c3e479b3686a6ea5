"""last_used_at and request counts per key, batched to the keys service (no write per request)."""

import asyncio
import uuid
from datetime import UTC, datetime

import structlog

from tollgate_gateway.authentication.keys_client import KeysClient, KeysUnreachable

logger = structlog.get_logger(__name__)


class KeyUsageTracker:
    def __init__(self, keys: KeysClient, *, flush_seconds: float) -> None:
        self.keys, self.flush_seconds = keys, flush_seconds
        self._pending: dict[uuid.UUID, tuple[datetime, int]] = {}

    def record(self, key_id: uuid.UUID) -> None:
        _, count = self._pending.get(key_id, (None, 0))
        self._pending[key_id] = (datetime.now(UTC), count + 1)

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        usage = [
            {"key_id": str(key_id), "last_used_at": used_at.isoformat(), "requests": count}
            for key_id, (used_at, count) in batch.items()
        ]
        try:
            await self.keys.report_usage(usage)
        except KeysUnreachable:
            # Put the batch back (merged with what arrived meanwhile) for the next attempt.
            for key_id, (used_at, count) in batch.items():
                newer_at, newer_count = self._pending.get(key_id, (used_at, 0))
                self._pending[key_id] = (max(used_at, newer_at), count + newer_count)
            logger.warning("key usage not reported; will retry", keys=len(batch))
            return 0
        return len(usage)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()
