"""The dunning schedule: when a failed invoice is retried, and when the dunning action applies
(ADR 0020). Anchored on the invoice's first failure, so a late job run or a customer's own try
in between never shifts the later moments."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.config import BillingSettings
from tollgate_billing.payments.models import DunningAction, DunningPolicy
from tollgate_billing.payments.repository import DunningPolicyRepository


@dataclass(frozen=True)
class DunningSchedule:
    retry_days: tuple[int, ...]  # days after the first failure, increasing
    grace_days: int
    action: DunningAction

    @classmethod
    def from_settings(cls, settings: BillingSettings) -> "DunningSchedule":
        return cls(
            retry_days=tuple(settings.dunning_retry_days),
            grace_days=settings.dunning_grace_days,
            action=DunningAction(settings.dunning_action),
        )

    def action_at(self, first_failed_at: datetime) -> datetime:
        return first_failed_at + timedelta(days=self.grace_days)

    def next_retry(self, first_failed_at: datetime, now: datetime) -> datetime | None:
        """The first scheduled retry after now; None when no retry is left."""
        for day in self.retry_days:
            moment = first_failed_at + timedelta(days=day)
            if moment > now:
                return moment
        return None


# Until a start has written the operator's settings (the defaults of BillingSettings).
DEFAULT_SCHEDULE = DunningSchedule(
    retry_days=(1, 3, 5), grace_days=7, action=DunningAction.DOWNGRADE
)


async def current_schedule(session: AsyncSession) -> DunningSchedule:
    policy = await DunningPolicyRepository(session).get()
    if policy is None:
        return DEFAULT_SCHEDULE
    return DunningSchedule(
        retry_days=tuple(policy.retry_days),
        grace_days=policy.grace_days,
        action=DunningAction(policy.action),
    )


async def save_schedule(session: AsyncSession, schedule: DunningSchedule, *, now: datetime) -> None:
    """Written at every start from the settings: outcomes a provider reports (webhooks) read
    the schedule here, and every replica reads the same one."""
    await DunningPolicyRepository(session).put(
        DunningPolicy(
            retry_days=list(schedule.retry_days),
            grace_days=schedule.grace_days,
            action=schedule.action.value,
            updated_at=now,
        )
    )
