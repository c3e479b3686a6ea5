"""Key changes reach every gateway replica through NATS and evict the cached key at once; an
organisation's plan or suspension change evicts all its keys, so it applies at once."""

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
ORGANIZATION_UPDATED = "tollgate.keys.organization.updated"
_KEY_CHANGE_PATH = re.compile(r"^/v1/keys/([0-9a-fA-F-]{36})(?:/rotate)?$")
EVICTIONS = Counter("tollgate_gateway_key_evictions_total", "Cached keys evicted by key events")
ORGANIZATION_EVICTIONS = Counter(
    "tollgate_gateway_organization_key_evictions_total",
    "Cached keys evicted because their organisation changed (its plan or suspension)",
)


class KeyInvalidation:
    """A plain (core NATS) subscription: JetStream publishes reach core subscribers too, with
    the lowest latency. Events missed while disconnected are covered by mark_all_stale()."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache
        self.last_eviction_at: float | None = None
        self._subscriptions: list[Subscription] = []

    async def start(self, nats: Client) -> None:
        self._subscriptions = [
            await nats.subscribe(KEY_EVENTS, cb=self._on_event),
            await nats.subscribe(ORGANIZATION_UPDATED, cb=self._on_organization_event),
        ]

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

    async def _on_organization_event(self, message: Msg) -> None:
        """Verified keys carry the org's plan and suspension: a rename evicts them too, which
        costs one lookup per key and keeps this free of guessing which fields changed."""
        try:
            org_id = uuid.UUID(json.loads(message.data)["data"]["organization_id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable organization event", subject=message.subject)
            return
        evicted = self.cache.evict_organization(org_id)
        self.last_eviction_at = time.monotonic()
        ORGANIZATION_EVICTIONS.inc(evicted)
        logger.info("organisation's keys evicted", org_id=str(org_id), secrets=evicted)

    async def on_reconnected(self) -> None:
        self.cache.mark_all_stale()
        logger.info("nats reconnected: cached keys will be re-checked")

    def after_response(self, *, method: str, path: str, status: int) -> None:
        """Read-your-writes: the replica that served a key change forgets the key at once,
        without waiting for the event (the other replicas get the event)."""
        changed = method in ("PATCH", "DELETE", "POST") and 200 <= status < 300
        if changed and (match := _KEY_CHANGE_PATH.match(path)):
            self.cache.evict_key(uuid.UUID(match.group(1)))
