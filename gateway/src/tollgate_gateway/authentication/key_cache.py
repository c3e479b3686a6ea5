"""In-process cache of verified API keys, by secret hash, with an index by key id for eviction
(and eviction by organisation when its plan or suspension changes)."""

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel


class VerifiedKey(BaseModel):
    """What the keys service says about a valid secret (its /internal/v1/keys/verify answer)."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    name: str
    environment: str
    scopes: list[str]
    rate_limit: dict[str, int] | None = None
    plan: str
    # The organisation is suspended for non-payment (ADR 0022); absent from an older keys service.
    suspended: bool = False
    expires_at: datetime | None = None


@dataclass
class CachedKey:
    key: VerifiedKey
    checked_at: float  # monotonic seconds

    def expired(self, now: datetime) -> bool:
        return self.key.expires_at is not None and self.key.expires_at <= now


class KeyCache:
    def __init__(self, *, max_entries: int, negative_seconds: float) -> None:
        self.max_entries, self.negative_seconds = max_entries, negative_seconds
        self._by_hash: OrderedDict[str, CachedKey] = OrderedDict()
        self._hashes_by_key: dict[uuid.UUID, set[str]] = {}
        self._unknown: dict[str, float] = {}
        # Bumped by every eviction: a lookup that started before one may carry a stale answer.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def get(self, secret_hash: str) -> CachedKey | None:
        cached = self._by_hash.get(secret_hash)
        if cached is not None:
            self._by_hash.move_to_end(secret_hash)
        return cached

    def put(self, secret_hash: str, key: VerifiedKey) -> None:
        self._unknown.pop(secret_hash, None)
        self._by_hash[secret_hash] = CachedKey(key, time.monotonic())
        self._by_hash.move_to_end(secret_hash)
        self._hashes_by_key.setdefault(key.key_id, set()).add(secret_hash)
        while len(self._by_hash) > self.max_entries:
            oldest, evicted = self._by_hash.popitem(last=False)
            self._forget_hash(evicted.key.key_id, oldest)

    def is_known_invalid(self, secret_hash: str) -> bool:
        until = self._unknown.get(secret_hash)
        if until is None:
            return False
        if until < time.monotonic():
            del self._unknown[secret_hash]
            return False
        return True

    def remember_invalid(self, secret_hash: str) -> None:
        if self.negative_seconds > 0:
            if len(self._unknown) >= self.max_entries:
                self._unknown.clear()
            self._unknown[secret_hash] = time.monotonic() + self.negative_seconds

    def evict_key(self, key_id: uuid.UUID) -> int:
        """Forget every secret of a key (revoked, rotated, changed, expired). Remembered-invalid
        hashes are forgotten too: a change may have made one valid again (expiry removed)."""
        self.generation += 1
        self._unknown.clear()
        return self._evict_hashes(key_id)

    def _evict_hashes(self, key_id: uuid.UUID) -> int:
        hashes = self._hashes_by_key.pop(key_id, set())
        for secret_hash in hashes:
            self._by_hash.pop(secret_hash, None)
        return len(hashes)

    def evict_organization(self, org_id: uuid.UUID) -> int:
        """Forget every cached key of the organisation (its plan or suspension changed, which its
        keys carry); returns how many secrets were forgotten. A scan: plan changes are rare
        next to requests, and the cache is bounded."""
        self.generation += 1
        key_ids = {
            cached.key.key_id for cached in self._by_hash.values() if cached.key.org_id == org_id
        }
        return sum(self._evict_hashes(key_id) for key_id in key_ids)

    def mark_all_stale(self) -> None:
        """After a NATS outage events may have been missed: re-check every key on next use."""
        self.generation += 1
        for cached in self._by_hash.values():
            cached.checked_at = float("-inf")
        self._unknown.clear()

    def _forget_hash(self, key_id: uuid.UUID, secret_hash: str) -> None:
        hashes = self._hashes_by_key.get(key_id)
        if hashes is not None:
            hashes.discard(secret_hash)
            if not hashes:
                del self._hashes_by_key[key_id]
