"""Key changes reach every gateway replica through NATS and evict the cached key at once."""

import json
import re
import time
import uuid

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter

from tollgate_gateway.authentication.key_cache import KeyCache

logger = structlog.get_logger(__name__)
KEY_EVENTS = "tollgate.keys.key.>"
_KEY_CHANGE_PATH = re.compile(r"^/v1/keys/([0-9a-fA-F-]{36})(?:/rotate)?$")
EVICTIONS = Counter("tollgate_gateway_key_evictions_total", "Cached keys evicted by key events")


class KeyInvalidation:
    """A plain (core NATS) subscription: JetStream publishes reach core subscribers too, with
    the lowest latency. Events missed while disconnected are covered by mark_all_stale()."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache
        self.last_eviction_at: float | None = None
        self._subscription: Subscription | None = None

    async def start(self, nats: Client) -> None:
        self._subscription = await nats.subscribe(KEY_EVENTS, cb=self._on_event)

    async def _on_event(self, message: Msg) -> None:
        try:
            key_id = uuid.UUID(json.loads(message.data)["data"]["key_id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable key event", subject=message.subject)
            return
        if message.subject.endswith(".created"):
            return
        evicted = self.cache.evict_key(key_id)
        self.last_eviction_at = time.monotonic()
        EVICTIONS.inc(evicted)
        logger.info("key evicted", key_id=str(key_id), subject=message.subject, secrets=evicted)

    async def on_reconnected(self) -> None:
        self.cache.mark_all_stale()
        logger.info("nats reconnected: cached keys will be re-checked")

    def after_response(self, *, method: str, path: str, status: int) -> None:
        """Read-your-writes: the replica that served a key change forgets the key at once,
        without waiting for the event (the other replicas get the event)."""
        changed = method in ("PATCH", "DELETE", "POST") and 200 <= status < 300
        if changed and (match := _KEY_CHANGE_PATH.match(path)):
            self.cache.evict_key(uuid.UUID(match.group(1)))
