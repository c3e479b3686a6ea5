"""The pending invoice items of an immediate plan change: credit for the unused part of the old
fee, charge for the rest of the period at the new one (ADR 0015, 0016)."""

from datetime import datetime

from tollgate_billing.catalog.models import Plan
from tollgate_billing.pricing.money import to_minor_units
from tollgate_billing.pricing.proration import period_fraction, prorate
from tollgate_billing.subscriptions.models import (
    Interval,
    PendingInvoiceItem,
    PendingInvoiceItemKind,
    Subscription,
    in_trial,
)


def fee_of(plan: Plan, interval: Interval) -> int | None:
    """The plan's fixed fee per interval in minor units; None when it is not sold so."""
    price = plan.monthly_price if interval == Interval.MONTH else plan.yearly_price
    return None if price is None else to_minor_units(price, plan.currency)


def unused_credit(
    subscription: Subscription, plan: Plan, *, now: datetime
) -> PendingInvoiceItem | None:
    """The credit for [now, period end) of the fee paid for the current period; None when
    there is nothing to give back (free plan, trial, nothing left)."""
    fee = fee_of(plan, Interval(subscription.interval)) or 0
    # A trial is free, whatever the status (past_due or suspended hide trialing).
    if fee == 0 or subscription.status == "trialing" or in_trial(subscription):
        return None
    start, end = subscription.current_period_start, subscription.current_period_end
    amount = prorate(fee, period_fraction(period_start=start, period_end=end, start=now, end=end))
    if amount == 0:
        return None
    return _item(
        subscription,
        plan,
        PendingInvoiceItemKind.PRORATION_CREDIT,
        -amount,
        covered=(now, end),
        description=f"Unused time on {plan.name} ({subscription.interval}ly)",
    )


def remaining_charge(
    subscription: Subscription,
    plan: Plan,
    *,
    now: datetime,
) -> PendingInvoiceItem | None:
    """The charge for [now, period end) at the new plan's fee, the subscription already on the
    new plan, interval and period; None when nothing is due."""
    fee = fee_of(plan, Interval(subscription.interval)) or 0
    # A trial is free, whatever the status (past_due or suspended hide trialing).
    if fee == 0 or subscription.status == "trialing" or in_trial(subscription):
        return None
    start, end = subscription.current_period_start, subscription.current_period_end
    amount = prorate(fee, period_fraction(period_start=start, period_end=end, start=now, end=end))
    if amount == 0:
        return None
    return _item(
        subscription,
        plan,
        PendingInvoiceItemKind.PRORATION_CHARGE,
        amount,
        covered=(now, end),
        description=f"Remaining time on {plan.name} ({subscription.interval}ly)",
    )


def _item(
    subscription: Subscription,
    plan: Plan,
    kind: PendingInvoiceItemKind,
    amount: int,
    *,
    covered: tuple[datetime, datetime],
    description: str,
) -> PendingInvoiceItem:
    return PendingInvoiceItem(
        customer_id=subscription.customer_id,
        subscription_id=subscription.id,
        kind=kind.value,
        plan_key=plan.key,
        interval=subscription.interval,
        currency=plan.currency,
        amount=amount,
        covered_from=covered[0],
        covered_to=covered[1],
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        description=description,
        subscription_version=subscription.version,
        created_at=covered[0],
    )
