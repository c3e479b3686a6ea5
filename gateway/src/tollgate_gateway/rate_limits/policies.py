"""Which limits apply to a caller: the org's plan tier, plus the key's own stricter override."""

import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tollgate_gateway.authentication.key_cache import VerifiedKey

# Fixed windows aligned on the Unix epoch (a day resets at 00:00 UTC), longest last.
WINDOWS = {"per_second": 1, "per_minute": 60, "per_hour": 3600, "per_day": 86400}
WINDOW_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}

Scope = Literal["org", "key"]


class Limits(BaseModel):
    """Quotas per window; a window left out is not limited. Same shape as a key's override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: int | None = Field(None, ge=1)
    per_minute: int | None = Field(None, ge=1)
    per_hour: int | None = Field(None, ge=1)
    per_day: int | None = Field(None, ge=1)

    def quotas(self) -> dict[int, int]:
        """Window length in seconds → quota."""
        return {
            seconds: quota
            for field, seconds in WINDOWS.items()
            if (quota := getattr(self, field)) is not None
        }


DEFAULT_PLANS: dict[str, Limits] = {
    "free": Limits(per_hour=1_000, per_day=10_000),
    "pro": Limits(per_hour=10_000, per_day=100_000),
    "enterprise": Limits(),  # unlimited
}


@dataclass(frozen=True)
class Policy:
    scope: Scope
    subject: uuid.UUID  # the org or the key the counter belongs to
    window: int  # seconds
    quota: int

    @property
    def name(self) -> str:
        """What clients see in the RateLimit headers and in violated-policies."""
        return f"{self.scope}-{WINDOW_NAMES[self.window]}"

    @property
    def counter(self) -> str:
        """The shared counter's name (a JetStream KV key)."""
        return f"{self.scope}.{self.subject}.{WINDOW_NAMES[self.window]}"


class PolicyBook:
    """Plan tiers from configuration. Billing will later publish each org's plan
    (`tollgate.billing.subscription.*`); until then the plan comes with the verified key."""

    def __init__(self, plans: dict[str, Limits], *, unknown_plan: str) -> None:
        if unknown_plan not in plans:
            raise ValueError(f"the fallback plan {unknown_plan!r} is not among the plans")
        self.plans, self.unknown_plan = plans, unknown_plan
        # By the cached key object itself: a changed key is a new object (the cache replaces it).
        self._by_key: dict[int, tuple[VerifiedKey, tuple[Policy, ...]]] = {}

    def org_policies(self, org_id: uuid.UUID, plan: str | None) -> tuple[Policy, ...]:
        limits = self.plans.get(plan or self.unknown_plan) or self.plans[self.unknown_plan]
        return _policies("org", org_id, limits)

    def key_policies(self, key: VerifiedKey) -> tuple[Policy, ...]:
        """The org's policies, then the key's own; memoized since this runs on every request."""
        memo = self._by_key.get(id(key))
        if memo is not None and memo[0] is key:
            return memo[1]
        override = Limits.model_validate(key.rate_limit) if key.rate_limit else Limits()
        policies = self.org_policies(key.org_id, key.plan) + _policies("key", key.key_id, override)
        if len(self._by_key) >= 100_000:
            self._by_key.clear()
        self._by_key[id(key)] = (key, policies)
        return policies


def _policies(scope: Scope, subject: uuid.UUID, limits: Limits) -> tuple[Policy, ...]:
    return tuple(
        Policy(scope=scope, subject=subject, window=window, quota=quota)
        for window, quota in limits.quotas().items()
    )
