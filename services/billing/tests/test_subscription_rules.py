"""The subscription rules in time: proration to the second, trials, scheduled changes, cancels
and periods rolled forward. Instants are chosen, so every boundary is exact."""

from datetime import UTC, datetime

import pytest

from tollgate_billing.catalog.service import PlanArchivedError
from tollgate_billing.subscriptions.models import Interval
from tollgate_billing.subscriptions.roller import roll_due_subscriptions
from tollgate_billing.subscriptions.schemas import Moment
from tollgate_billing.subscriptions.service import (
    IntervalNotOfferedError,
    NothingToCancelError,
    cancel,
    change_plan,
    resume,
    roll_forward,
)

from .subscription_helpers import load, new_subscription, outbox_events, pending_items

# The default catalog: Pro $99/month ($990/year, 14-day trial), Enterprise $999/month only.
PRO_MONTH, PRO_YEAR, ENTERPRISE_MONTH = 9900, 99000, 99900


def at(*parts: int, microsecond: int = 0) -> datetime:
    return datetime(*parts, microsecond=microsecond, tzinfo=UTC)


async def change(db, org_id, plan, *, now, interval=None, moment=Moment.NOW):
    async with db() as session, session.begin():
        subscription = await load(session, org_id)
        items = await change_plan(
            session,
            subscription=subscription,
            plan_key=plan,
            interval=interval,
            at=moment,
            now=now,
            default_plan="free",
        )
        return subscription, [(item.kind, item.plan_key, item.amount) for item in items]


async def roll(db, org_id, *, now):
    async with db() as session, session.begin():
        subscription = await load(session, org_id)
        moved = await roll_forward(session, subscription=subscription, now=now, default_plan="free")
        return subscription, moved


async def test_a_change_at_the_first_second_of_a_31_day_period_prorates_it_all(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    subscription, items = await change(db, org, "enterprise", now=at(2027, 1, 1))
    assert items == [
        ("proration_credit", "pro", -PRO_MONTH),
        ("proration_charge", "enterprise", ENTERPRISE_MONTH),
    ]
    # Same interval: the period is kept.
    assert (subscription.current_period_start, subscription.current_period_end) == (
        at(2027, 1, 1),
        at(2027, 2, 1),
    )
    assert (subscription.plan_key, subscription.status, subscription.version) == (
        "enterprise",
        "active",
        2,
    )


async def test_a_change_at_the_last_second_leaves_one_second_to_prorate(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    subscription, items = await change(db, org, "enterprise", now=at(2027, 1, 31, 23, 59, 59))
    # 1 s of 2,678,400: 9900 and 99900 cents x 1/2678400 both round to 0, so no line at all.
    assert items == []
    assert subscription.plan_key == "enterprise"
    async with db() as session:
        assert await pending_items(session, org) == []


async def test_the_period_end_itself_belongs_to_the_next_period(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    subscription, items = await change(db, org, "enterprise", now=at(2027, 2, 1))
    # Rolled forward first: the change is at the first second of February's period.
    assert subscription.current_period_start == at(2027, 2, 1)
    assert items == [
        ("proration_credit", "pro", -PRO_MONTH),
        ("proration_charge", "enterprise", ENTERPRISE_MONTH),
    ]


async def test_half_of_a_28_day_february_is_half_the_fee_and_part_seconds_count_for_nothing(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 2, 1))
    _, items = await change(db, org, "enterprise", now=at(2027, 2, 15, microsecond=999_999))
    assert items == [
        ("proration_credit", "pro", -4950),
        ("proration_charge", "enterprise", 49950),
    ]


async def test_a_29_day_february_prorates_exactly_and_rounds_half_to_even_once(db):
    org = await new_subscription(db, plan="pro", now=at(2028, 2, 1))
    _, items = await change(db, org, "enterprise", now=at(2028, 2, 15))
    # 15 of 29 days: 9900 x 15/29 = 5120.69 → 5121; 99900 x 15/29 = 51672.41 → 51672.
    assert items == [
        ("proration_credit", "pro", -5121),
        ("proration_charge", "enterprise", 51672),
    ]


async def test_a_downgrade_credits_more_than_it_charges(db):
    org = await new_subscription(db, plan="enterprise", now=at(2027, 4, 1))
    _, items = await change(db, org, "pro", now=at(2027, 4, 16))
    # 15 of 30 days.
    assert items == [
        ("proration_credit", "enterprise", -49950),
        ("proration_charge", "pro", 4950),
    ]


async def test_monthly_to_yearly_and_back_restart_the_period(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 3, 1))
    subscription, items = await change(db, org, "pro", interval=Interval.YEAR, now=at(2027, 3, 1))
    assert items == [("proration_credit", "pro", -PRO_MONTH), ("proration_charge", "pro", PRO_YEAR)]
    assert (subscription.interval, subscription.current_period_end) == ("year", at(2028, 3, 1))

    # Enterprise is sold monthly only: asked yearly it is refused, else it goes monthly.
    with pytest.raises(IntervalNotOfferedError):
        await change(db, org, "enterprise", interval=Interval.YEAR, now=at(2027, 9, 1))
    subscription, items = await change(db, org, "enterprise", now=at(2027, 9, 1))
    # 182 of the year's 366 days (February 2028 has 29) are unused: 99000 x 182/366 = 49229.51.
    assert items == [
        ("proration_credit", "pro", -49230),
        ("proration_charge", "enterprise", ENTERPRISE_MONTH),
    ]
    assert (subscription.interval, subscription.current_period_start) == ("month", at(2027, 9, 1))
    assert subscription.current_period_end == at(2027, 10, 1)


async def test_the_first_paid_plan_starts_a_trial_without_charge(db):
    org = await new_subscription(db, plan="free", now=at(2027, 1, 10, 8))
    subscription, items = await change(db, org, "pro", now=at(2027, 1, 20, 12))
    assert items == []
    assert (subscription.status, subscription.trial_end) == ("trialing", at(2027, 2, 3, 12))
    assert subscription.current_period_end == at(2027, 2, 3, 12)

    # Another paid plan during the trial keeps the trial, still without charge.
    subscription, items = await change(db, org, "enterprise", now=at(2027, 1, 25))
    assert (items, subscription.status, subscription.trial_end) == (
        [],
        "trialing",
        at(2027, 2, 3, 12),
    )

    _, moved = await roll(db, org, now=at(2027, 2, 3, 11, 59, 59))
    assert not moved
    subscription, moved = await roll(db, org, now=at(2027, 2, 3, 12))
    assert moved
    assert subscription.status == "active"
    assert (subscription.current_period_start, subscription.current_period_end) == (
        at(2027, 2, 3, 12),
        at(2027, 3, 3, 12),
    )

    # A trial is given once: back to free, then pro again is charged at once.
    await change(db, org, "free", now=at(2027, 2, 10, 12))
    subscription, items = await change(db, org, "pro", now=at(2027, 2, 17, 12))
    assert subscription.status == "active"
    # 14 of 28 days of the period [3 Feb 12:00, 3 Mar 12:00): half the fee.
    assert items == [("proration_charge", "pro", 4950)]

    async with db() as session:
        events = await outbox_events(session, org)
    assert [(data["status"], data["plan"], data["version"]) for _, data in events] == [
        ("active", "free", 1),
        ("trialing", "pro", 2),
        ("trialing", "enterprise", 3),
        ("active", "enterprise", 4),
        ("active", "free", 5),
        ("active", "pro", 6),
    ]


async def test_a_scheduled_change_waits_for_the_period_end(db):
    org = await new_subscription(db, plan="enterprise", now=at(2027, 1, 31, 10))
    subscription, items = await change(
        db, org, "pro", moment=Moment.PERIOD_END, now=at(2027, 2, 10)
    )
    assert items == []
    assert (subscription.plan_key, subscription.scheduled_plan_key) == ("enterprise", "pro")
    version = subscription.version
    # Asking again changes nothing.
    subscription, _ = await change(db, org, "pro", moment=Moment.PERIOD_END, now=at(2027, 2, 11))
    assert subscription.version == version

    subscription, moved = await roll(db, org, now=at(2027, 2, 28, 10))
    assert moved
    assert (subscription.plan_key, subscription.scheduled_plan_key) == ("pro", None)
    # Same interval: the periods go on from the anchor (31 January), clamped to 31 March.
    assert (subscription.current_period_start, subscription.current_period_end) == (
        at(2027, 2, 28, 10),
        at(2027, 3, 31, 10),
    )
    async with db() as session:
        assert await pending_items(session, org) == []


async def test_staying_on_the_current_plan_at_period_end_clears_what_was_scheduled(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    await change(
        db, org, "pro", interval=Interval.YEAR, moment=Moment.PERIOD_END, now=at(2027, 1, 5)
    )
    subscription, _ = await change(db, org, "pro", moment=Moment.PERIOD_END, now=at(2027, 1, 6))
    assert subscription.scheduled_plan_key is None
    subscription, _ = await roll(db, org, now=at(2027, 2, 1))
    assert (subscription.plan_key, subscription.interval) == ("pro", "month")


async def test_an_interval_switch_at_period_end_anchors_the_year_there(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 15, 9, 30))
    await change(
        db, org, "pro", interval=Interval.YEAR, moment=Moment.PERIOD_END, now=at(2027, 2, 1)
    )
    subscription, _ = await roll(db, org, now=at(2027, 2, 15, 9, 30))
    assert (subscription.interval, subscription.current_period_end) == (
        "year",
        at(2028, 2, 15, 9, 30),
    )


async def test_cancel_at_period_end_moves_to_the_default_plan_then(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    async with db() as session, session.begin():
        subscription = await load(session, org)
        await cancel(
            session,
            subscription=subscription,
            at=Moment.PERIOD_END,
            now=at(2027, 1, 10),
            default_plan="free",
        )
        assert subscription.cancel_at_period_end
        await resume(session, subscription=subscription, now=at(2027, 1, 11), default_plan="free")
        assert not subscription.cancel_at_period_end
        await cancel(
            session,
            subscription=subscription,
            at=Moment.PERIOD_END,
            now=at(2027, 1, 12),
            default_plan="free",
        )
    subscription, _ = await roll(db, org, now=at(2027, 2, 1, 0, 0, 1))
    assert (subscription.plan_key, subscription.status, subscription.canceled_at) == (
        "free",
        "canceled",
        at(2027, 2, 1),
    )
    assert (subscription.current_period_start, subscription.current_period_end) == (
        at(2027, 2, 1),
        at(2027, 3, 1),
    )
    async with db() as session:
        events = await outbox_events(session, org)
        assert await pending_items(session, org) == []
    subject, data = events[-1]
    assert subject == "tollgate.billing.subscription.canceled"
    assert (data["plan"], data["rate_limit_tier"], data["status"]) == ("free", "free", "canceled")
    assert data["cancel_at_period_end"] is False
    assert [data["version"] for _, data in events] == [1, 2, 3, 4, 5]


async def test_cancel_now_credits_the_unused_time_and_a_repeat_changes_nothing(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 4, 1))
    async with db() as session, session.begin():
        subscription = await load(session, org)
        items = await cancel(
            session,
            subscription=subscription,
            at=Moment.NOW,
            now=at(2027, 4, 16),
            default_plan="free",
        )
        assert [(item.kind, item.amount) for item in items] == [("proration_credit", -4950)]
        assert (subscription.plan_key, subscription.status) == ("free", "canceled")
        version = subscription.version
        again = await cancel(
            session,
            subscription=subscription,
            at=Moment.NOW,
            now=at(2027, 4, 17),
            default_plan="free",
        )
        assert (again, subscription.version) == ([], version)


async def test_there_is_nothing_to_cancel_on_the_default_plan(db):
    org = await new_subscription(db, plan="free", now=at(2027, 4, 1))
    async with db() as session, session.begin():
        subscription = await load(session, org)
        with pytest.raises(NothingToCancelError):
            await cancel(
                session,
                subscription=subscription,
                at=Moment.NOW,
                now=at(2027, 4, 2),
                default_plan="free",
            )


async def test_the_same_plan_and_interval_now_is_a_no_op(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 1))
    subscription, items = await change(db, org, "pro", now=at(2027, 1, 5))
    assert (items, subscription.version) == ([], 1)
    async with db() as session:
        assert len(await outbox_events(session, org)) == 1


async def test_an_archived_plan_cannot_be_chosen(db, client, operator):
    created = await client.post(
        "/v1/billing/admin/plans",
        json={"key": "legacy", "name": "Legacy", "monthly_price": "5"},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    assert (
        await client.delete("/v1/billing/admin/plans/legacy", headers=operator)
    ).status_code == 200
    org = await new_subscription(db, plan="free", now=at(2027, 1, 1))
    with pytest.raises(PlanArchivedError):
        await change(db, org, "legacy", now=at(2027, 1, 2))
    with pytest.raises(PlanArchivedError):
        await change(db, org, "legacy", moment=Moment.PERIOD_END, now=at(2027, 1, 2))


async def test_periods_missed_during_downtime_are_rolled_in_one_step(db):
    org = await new_subscription(db, plan="pro", now=at(2027, 1, 31, 10))
    subscription, moved = await roll(db, org, now=at(2027, 5, 15))
    assert moved
    assert (subscription.period_number, subscription.version) == (3, 2)
    assert (subscription.current_period_start, subscription.current_period_end) == (
        at(2027, 4, 30, 10),
        at(2027, 5, 31, 10),
    )
    async with db() as session:
        assert len(await outbox_events(session, org)) == 2


async def test_the_roller_rolls_due_subscriptions_once(db):
    org = await new_subscription(db, plan="pro", now=at(2030, 1, 1))
    await roll_due_subscriptions(db, default_plan="free", now=at(2030, 2, 1))
    await roll_due_subscriptions(db, default_plan="free", now=at(2030, 2, 1))
    async with db() as session:
        subscription = await load(session, org)
        assert (subscription.current_period_start, subscription.version) == (at(2030, 2, 1), 2)


async def test_a_change_scheduled_before_the_plan_was_archived_still_applies(db, client, operator):
    created = await client.post(
        "/v1/billing/admin/plans",
        json={"key": "sunset", "name": "Sunset", "monthly_price": "20"},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    org = await new_subscription(db, plan="pro", now=at(2027, 6, 1))
    await change(db, org, "sunset", moment=Moment.PERIOD_END, now=at(2027, 6, 10))
    assert (
        await client.delete("/v1/billing/admin/plans/sunset", headers=operator)
    ).status_code == 200
    subscription, _ = await roll(db, org, now=at(2027, 7, 1))
    assert (subscription.plan_key, subscription.current_period_start) == ("sunset", at(2027, 7, 1))
