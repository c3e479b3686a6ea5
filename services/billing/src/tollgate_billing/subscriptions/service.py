"""The rules of subscriptions: start, change plan or interval, cancel, resume, roll periods.

Every function takes the subscription locked by the caller, brings it up to `now` first
(roll_forward), never commits, and publishes one event per change through the outbox.
"""

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.catalog.service import PlanArchivedError, get_plan
from tollgate_billing.customers.models import Customer
from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.invoices.periods import track_period
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.subscriptions.models import (
    Interval,
    PendingInvoiceItem,
    Status,
    Subscription,
    in_trial,
)
from tollgate_billing.subscriptions.periods import period_bounds, whole_second
from tollgate_billing.subscriptions.proration import fee_of, remaining_charge, unused_credit
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.schemas import Moment
from tollgate_shared.errors import ConflictError, NotFoundError

logger = structlog.get_logger(__name__)


class SubscriptionNotFoundError(NotFoundError):
    slug, title = "subscription-not-found", "Subscription not found"


class IntervalNotOfferedError(ConflictError):
    slug, title = "interval-not-offered", "Interval not offered"


class NothingToCancelError(ConflictError):
    slug, title = "nothing-to-cancel", "Nothing to cancel"


class PlanMissingError(RuntimeError):
    """A plan a subscription points to is gone from the database: a deployment fault."""


async def start_subscription(
    session: AsyncSession, *, customer: Customer, plan: Plan, now: datetime
) -> Subscription:
    """The new customer's subscription: the plan (the default one), monthly, active."""
    now = whole_second(now)
    start, end = period_bounds(now, Interval.MONTH, 0)
    subscription = Subscription(
        customer_id=customer.id,
        org_id=customer.org_id,
        plan_key=plan.key,
        interval=Interval.MONTH.value,
        status=Status.ACTIVE.value,
        anchor_at=start,
        period_number=0,
        current_period_start=start,
        current_period_end=end,
        trial_used=(fee_of(plan, Interval.MONTH) or 0) > 0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    await SubscriptionRepository(session).save(subscription)
    await track_period(session, subscription=subscription, plan=plan, base_fee_due=True)
    await _publish(session, subscription, plan, BillingEvent.SUBSCRIPTION_CREATED)
    return subscription


async def current_subscription(
    session: AsyncSession, *, org_id: uuid.UUID, for_update: bool = False
) -> Subscription:
    subscription = await SubscriptionRepository(session).of_org(org_id, for_update=for_update)
    if subscription is None:
        raise SubscriptionNotFoundError("This organisation has no subscription yet.")
    return subscription


async def subscription_as_of(
    session: AsyncSession, *, org_id: uuid.UUID, now: datetime, default_plan: str
) -> Subscription:
    """The subscription as of `now`: one whose period ended since the roller's last round is
    rolled forward first, under its lock (a plain read otherwise)."""
    subscription = await current_subscription(session, org_id=org_id)
    if subscription.current_period_end <= now:
        subscription = await current_subscription(session, org_id=org_id, for_update=True)
        await roll_forward(session, subscription=subscription, now=now, default_plan=default_plan)
    return subscription


async def change_plan(
    session: AsyncSession,
    *,
    subscription: Subscription,
    plan_key: str,
    interval: Interval | None,
    at: Moment,
    now: datetime,
    default_plan: str,
) -> list[PendingInvoiceItem]:
    """Move to another plan or interval, now (prorated) or at the period's end; returns the
    proration items recorded. Asking for what is already so changes nothing."""
    now = whole_second(now)
    await roll_forward(session, subscription=subscription, now=now, default_plan=default_plan)
    target = await get_plan(session, key=plan_key, include_archived=True)
    wanted = _interval_for(target, interval, current=Interval(subscription.interval))
    same = target.key == subscription.plan_key and wanted == subscription.interval
    if at == Moment.PERIOD_END:
        await _schedule(session, subscription, target, wanted, stay=same, now=now)
        return []
    if same:
        return []
    if target.archived_at is not None:
        raise PlanArchivedError(f"The plan '{target.key}' is no longer on sale.")
    current = await _plan(session, subscription.plan_key)
    credit = unused_credit(subscription, current, now=now)
    period_before = (subscription.current_period_start, subscription.current_period_end)
    _move(subscription, target, wanted, now=now)
    subscription.scheduled_plan_key = subscription.scheduled_interval = None
    subscription.cancel_at_period_end = False
    await _changed(session, subscription, target, BillingEvent.SUBSCRIPTION_UPDATED, now=now)
    # A period the change started is billed by its proration charge, not a base fee.
    period_after = (subscription.current_period_start, subscription.current_period_end)
    if period_after != period_before:
        await track_period(
            session, subscription=subscription, plan=target, base_fee_due=False, restarted=True
        )
    charge = remaining_charge(subscription, target, now=now)
    items = [item for item in (credit, charge) if item is not None]
    for item in items:
        item.subscription_version = subscription.version
    await SubscriptionRepository(session).add_items(items)
    logger.info(
        "subscription changed",
        subscription_id=str(subscription.id),
        plan=target.key,
        interval=wanted.value,
        proration=[item.amount for item in items],
    )
    return items


async def cancel(
    session: AsyncSession,
    *,
    subscription: Subscription,
    at: Moment,
    now: datetime,
    default_plan: str,
) -> list[PendingInvoiceItem]:
    """End the paid plan: the customer moves to the default plan, now (unused time credited)
    or at the period's end. Canceling again changes nothing."""
    now = whole_second(now)
    await roll_forward(session, subscription=subscription, now=now, default_plan=default_plan)
    if subscription.status == Status.CANCELED:
        return []
    if subscription.plan_key == default_plan:
        raise NothingToCancelError(
            f"The organisation is on the default plan '{default_plan}': there is no paid plan "
            "to cancel."
        )
    if at == Moment.PERIOD_END:
        if not subscription.cancel_at_period_end or subscription.scheduled_plan_key:
            subscription.cancel_at_period_end = True
            subscription.scheduled_plan_key = subscription.scheduled_interval = None
            plan = await _plan(session, subscription.plan_key)
            await _changed(session, subscription, plan, BillingEvent.SUBSCRIPTION_UPDATED, now=now)
        return []
    current = await _plan(session, subscription.plan_key)
    credit = unused_credit(subscription, current, now=now)
    default = await _move_to_default(session, subscription, default_plan, at_moment=now)
    await _changed(session, subscription, default, BillingEvent.SUBSCRIPTION_CANCELED, now=now)
    await track_period(
        session, subscription=subscription, plan=default, base_fee_due=True, restarted=True
    )
    items = [credit] if credit is not None else []
    for item in items:
        item.subscription_version = subscription.version
    await SubscriptionRepository(session).add_items(items)
    return items


async def resume(
    session: AsyncSession, *, subscription: Subscription, now: datetime, default_plan: str
) -> None:
    """Undo a pending cancel; with none pending nothing changes (a retry is harmless)."""
    now = whole_second(now)
    await roll_forward(session, subscription=subscription, now=now, default_plan=default_plan)
    if subscription.cancel_at_period_end:
        subscription.cancel_at_period_end = False
        plan = await _plan(session, subscription.plan_key)
        await _changed(session, subscription, plan, BillingEvent.SUBSCRIPTION_UPDATED, now=now)


async def roll_forward(
    session: AsyncSession, *, subscription: Subscription, now: datetime, default_plan: str
) -> bool:
    """Bring the subscription to `now`: end its trial, apply a pending cancel or scheduled
    change, or start the next period, as many times as periods ended (after downtime).
    Publishes one event when anything moved; returns whether it did."""
    now = whole_second(now)
    event: BillingEvent | None = None
    while subscription.current_period_end <= now:
        ended_at = subscription.current_period_end
        if subscription.cancel_at_period_end:
            default = await _move_to_default(
                session, subscription, default_plan, at_moment=ended_at
            )
            await track_period(session, subscription=subscription, plan=default, base_fee_due=True)
            event = BillingEvent.SUBSCRIPTION_CANCELED
            continue
        # A trial that went past_due or suspended (an older invoice failed) still ends here.
        trial_ended = subscription.status == Status.TRIALING or in_trial(subscription)
        if subscription.status == Status.TRIALING:
            subscription.status = Status.ACTIVE.value
        if subscription.scheduled_plan_key and subscription.scheduled_interval:
            target = await _plan(session, subscription.scheduled_plan_key)
            # Applied even if archived since: the customer chose it while it was on sale.
            _move(subscription, target, Interval(subscription.scheduled_interval), now=ended_at)
            subscription.scheduled_plan_key = subscription.scheduled_interval = None
        if subscription.current_period_end > ended_at:
            pass  # the scheduled change started a period (or a trial) of its own
        elif trial_ended:  # the paid periods start when the trial ends
            _restart_period(subscription, anchor=ended_at)
        else:
            subscription.period_number += 1
            subscription.current_period_start, subscription.current_period_end = period_bounds(
                subscription.anchor_at, Interval(subscription.interval), subscription.period_number
            )
        await track_period(
            session,
            subscription=subscription,
            plan=await _plan(session, subscription.plan_key),
            base_fee_due=True,
        )
        event = event or BillingEvent.SUBSCRIPTION_UPDATED
    if event is None:
        return False
    plan = await _plan(session, subscription.plan_key)
    await _changed(session, subscription, plan, event, now=now)
    return True


async def set_payment_status(
    session: AsyncSession, *, subscription: Subscription, status: Status, now: datetime
) -> bool:
    """Payments move the locked subscription between active, past_due, suspended (and
    canceled on the default plan) (ADR 0020); the plan and periods stay. Returns whether the
    status changed (an event then)."""
    if subscription.status == status:
        return False
    subscription.status = status.value
    plan = await _plan(session, subscription.plan_key)
    await _changed(session, subscription, plan, BillingEvent.SUBSCRIPTION_UPDATED, now=now)
    return True


def status_once_paid(subscription: Subscription, *, now: datetime) -> Status:
    """The status a past_due or suspended subscription goes back to once nothing is owed:
    trialing in its trial, canceled on the default plan after a cancel, else active."""
    if in_trial(subscription) and now < subscription.current_period_end:
        return Status.TRIALING
    if subscription.canceled_at is not None:
        return Status.CANCELED
    return Status.ACTIVE


async def downgrade_unpaid(
    session: AsyncSession, *, subscription: Subscription, now: datetime, default_plan: str
) -> None:
    """The dunning action "downgrade": the default plan from now, status canceled. Unlike a
    cancel, no credit item for the unused time, and the period it ends bills no base fee
    either: the customer did not pay the last one, a further fee would only start another
    dunning (ADR 0020). Its usage is still billed."""
    now = whole_second(now)
    await roll_forward(session, subscription=subscription, now=now, default_plan=default_plan)
    if subscription.plan_key == default_plan:  # owed usage on the default plan: no move
        await set_payment_status(
            session, subscription=subscription, status=Status.CANCELED, now=now
        )
        return
    running = await InvoiceRepository(session).running_draft(subscription.id)
    default = await _move_to_default(session, subscription, default_plan, at_moment=now)
    subscription.status = Status.CANCELED.value
    await _changed(session, subscription, default, BillingEvent.SUBSCRIPTION_CANCELED, now=now)
    await track_period(
        session, subscription=subscription, plan=default, base_fee_due=True, restarted=True
    )
    if running is not None and running.period_start < now:  # not taken over by the new one
        running.base_fee_due = False
        await InvoiceRepository(session).save(running)


def _interval_for(plan: Plan, asked: Interval | None, *, current: Interval) -> Interval:
    if asked is None:  # keep the interval when the plan is sold so, else monthly
        return current if fee_of(plan, current) is not None else Interval.MONTH
    if fee_of(plan, asked) is None:
        raise IntervalNotOfferedError(
            f"The plan '{plan.key}' is not sold {asked.value}ly.", plan=plan.key
        )
    return asked


async def _schedule(
    session: AsyncSession,
    subscription: Subscription,
    target: Plan,
    interval: Interval,
    *,
    stay: bool,
    now: datetime,
) -> None:
    """At period end: `stay` (the current plan and interval) clears a scheduled change and a
    pending cancel; another plan replaces them. Asking for what is already set is a no-op."""
    if stay:
        wanted: tuple[str | None, str | None] = (None, None)
    else:
        if target.archived_at is not None:
            raise PlanArchivedError(f"The plan '{target.key}' is no longer on sale.")
        wanted = (target.key, interval.value)
    scheduled = (subscription.scheduled_plan_key, subscription.scheduled_interval)
    if scheduled == wanted and not subscription.cancel_at_period_end:
        return
    subscription.scheduled_plan_key, subscription.scheduled_interval = wanted
    subscription.cancel_at_period_end = False
    plan = await _plan(session, subscription.plan_key)
    await _changed(session, subscription, plan, BillingEvent.SUBSCRIPTION_UPDATED, now=now)


def _move(subscription: Subscription, target: Plan, interval: Interval, *, now: datetime) -> None:
    """Put the subscription on the plan and interval from `now` (no money here).

    The first paid plan starts its trial (if it has one); a paid plan during a trial keeps the
    trial; a free plan ends it. The same interval keeps the period, another one restarts it."""
    paid = (fee_of(target, interval) or 0) > 0
    was_trialing = subscription.status == Status.TRIALING or in_trial(subscription)
    # An organisation that owes a failed invoice stays past_due or suspended through a plan
    # change: only paying (or a void) lifts it (ADR 0020).
    owing = subscription.status in (Status.PAST_DUE, Status.SUSPENDED)
    interval_changed = interval != subscription.interval
    subscription.plan_key, subscription.interval = target.key, interval.value
    subscription.canceled_at = None
    if paid and was_trialing:
        return  # the trial, and its period, go on
    if paid and not subscription.trial_used and target.trial_days > 0:
        if not owing:
            subscription.status = Status.TRIALING.value
        subscription.trial_used = True
        subscription.trial_end = now + timedelta(days=target.trial_days)
        subscription.anchor_at = subscription.current_period_start = now
        subscription.period_number = 0
        subscription.current_period_end = subscription.trial_end
        return
    subscription.trial_used = subscription.trial_used or paid
    if subscription.status in (Status.TRIALING, Status.CANCELED):
        subscription.status = Status.ACTIVE.value
    if was_trialing or interval_changed:
        _restart_period(subscription, anchor=now)


def _restart_period(subscription: Subscription, *, anchor: datetime) -> None:
    subscription.anchor_at, subscription.period_number = anchor, 0
    subscription.current_period_start, subscription.current_period_end = period_bounds(
        anchor, Interval(subscription.interval), 0
    )


async def _move_to_default(
    session: AsyncSession, subscription: Subscription, default_plan: str, *, at_moment: datetime
) -> Plan:
    default = await _plan(session, default_plan)
    subscription.plan_key, subscription.interval = default.key, Interval.MONTH.value
    # An organisation that owes a failed invoice stays past_due or suspended until it pays.
    if subscription.status not in (Status.PAST_DUE, Status.SUSPENDED):
        subscription.status = Status.CANCELED.value
    subscription.canceled_at = at_moment
    subscription.cancel_at_period_end = False
    subscription.scheduled_plan_key = subscription.scheduled_interval = None
    _restart_period(subscription, anchor=at_moment)
    return default


async def _plan(session: AsyncSession, key: str) -> Plan:
    plan = await PlanRepository(session).get(key)
    if plan is None:
        raise PlanMissingError(f"the plan '{key}' is not in the catalog")
    return plan


async def _changed(
    session: AsyncSession,
    subscription: Subscription,
    plan: Plan,
    event: BillingEvent,
    *,
    now: datetime,
) -> None:
    subscription.version += 1
    subscription.updated_at = now
    repository = SubscriptionRepository(session)
    await repository.save(subscription)
    await repository.follow_plan_on_customer(subscription)
    await _publish(session, subscription, plan, event)


async def _publish(
    session: AsyncSession, subscription: Subscription, plan: Plan, event: BillingEvent
) -> None:
    await publish(
        session,
        event,
        org_id=subscription.org_id,
        subject=f"subscriptions/{subscription.id}",
        data=event_data(subscription, plan),
    )


def event_data(subscription: Subscription, plan: Plan) -> dict[str, object]:
    """The facts of tollgate.billing.subscription.* (docs/events.md)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    scheduled = None
    if subscription.scheduled_plan_key:
        scheduled = {
            "plan": subscription.scheduled_plan_key,
            "interval": subscription.scheduled_interval,
        }
    return {
        "subscription_id": str(subscription.id),
        "organization_id": str(subscription.org_id),
        "customer_id": str(subscription.customer_id),
        "plan": plan.key,
        "rate_limit_tier": plan.rate_limit_tier,
        "status": subscription.status,
        "interval": subscription.interval,
        "current_period_start": iso(subscription.current_period_start),
        "current_period_end": iso(subscription.current_period_end),
        "trial_end": iso(subscription.trial_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": iso(subscription.canceled_at),
        "scheduled_change": scheduled,
        "version": subscription.version,
    }
