"""Statuses while an organisation owes a failed invoice, against plan changes and trials: a
suspension or past_due is lifted only by paying (or a void), and a trial still ends on time."""

from datetime import UTC, datetime, timedelta

from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.service import mark_paid
from tollgate_billing.payments.dunning import apply_dunning_action
from tollgate_billing.payments.models import DunningAction
from tollgate_billing.payments.outcomes import payment_failed
from tollgate_billing.subscriptions.models import Subscription
from tollgate_billing.subscriptions.roller import roll_due_subscriptions
from tollgate_billing.subscriptions.schemas import Moment
from tollgate_billing.subscriptions.service import change_plan

from .payment_helpers import invoice_row, open_invoice, status_of
from .subscription_helpers import load, new_subscription, pending_items

CHANGE = "/v1/billing/subscription/change"
SECOND = timedelta(seconds=1)


async def _fail(db, invoice_id, now, reference="r1") -> None:
    async with db() as session, session.begin():
        await payment_failed(
            session,
            invoice_id=invoice_id,
            now=now,
            provider="ledger",
            reference=reference,
            reason="card_declined",
        )


async def _start_pro_trial(db, org_id, start) -> Subscription:
    """The organisation moves from free to Pro at `start`: its 14-day trial begins."""
    async with db() as session, session.begin():
        subscription = await load(session, org_id)
        await change_plan(
            session,
            subscription=subscription,
            plan_key="pro",
            interval=None,
            at=Moment.NOW,
            now=start,
            default_plan="free",
        )
    return subscription


async def test_a_plan_change_to_a_plan_with_a_trial_does_not_lift_a_suspension(client, db, acme):
    now = datetime.now(UTC)
    await new_subscription(db, org_id=acme.org_id, plan="free", now=now - timedelta(days=2))
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    await _fail(db, invoice_id, now)
    async with db() as session, session.begin():
        invoice = await invoice_row(session, invoice_id)
        await apply_dunning_action(
            session, invoice=invoice, action=DunningAction.SUSPEND, now=now, default_plan="free"
        )
    async with db() as session:
        assert await status_of(session, acme.org_id) == "suspended"

    changed = await client.post(
        CHANGE, json={"plan": "pro", "at": "now"}, headers=acme.user("org_admin")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"] == "pro"
    async with db() as session:
        # Still owes: the gateway must keep refusing its calls until it pays.
        assert await status_of(session, acme.org_id) == "suspended"
        # The trial it started is still free: its period bills no base fee.
        subscription = await load(session, acme.org_id)
        draft = await InvoiceRepository(session).running_draft(subscription.id)
        assert draft is not None and draft.plan_key == "pro"
        assert draft.base_fee_due is False


async def test_past_due_stays_past_due_through_a_plan_change(client, db, acme):
    now = datetime.now(UTC)
    await new_subscription(db, org_id=acme.org_id, plan="free", now=now - timedelta(days=2))
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    await _fail(db, invoice_id, now)
    changed = await client.post(
        CHANGE, json={"plan": "pro", "at": "now"}, headers=acme.user("org_admin")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"] == "pro"
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"


async def test_a_trial_that_goes_past_due_still_ends_on_time(db, acme):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    await new_subscription(db, org_id=acme.org_id, plan="free", now=start)
    subscription = await _start_pro_trial(db, acme.org_id, start)
    assert subscription.status == "trialing"
    trial_end = subscription.trial_end
    assert trial_end is not None
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=start + timedelta(days=1))
    await _fail(db, invoice_id, start + timedelta(days=1))
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"
    await roll_due_subscriptions(db, default_plan="free", now=trial_end + SECOND)
    async with db() as session:
        rolled = await load(session, acme.org_id)
        # The paid periods start when the trial ends: no gap left unbilled.
        assert rolled.current_period_start == trial_end
        assert rolled.current_period_end == datetime(2026, 4, 15, tzinfo=UTC)
        assert rolled.status == "past_due"


async def test_paying_during_a_trial_returns_it_to_trialing(db, acme):
    start = datetime.now(UTC) - timedelta(days=1)
    await new_subscription(db, org_id=acme.org_id, plan="free", now=start)
    await _start_pro_trial(db, acme.org_id, start)
    now = start + timedelta(hours=1)
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    await _fail(db, invoice_id, now)
    async with db() as session, session.begin():
        await mark_paid(session, invoice_id=invoice_id, now=now + SECOND)
    async with db() as session:
        assert await status_of(session, acme.org_id) == "trialing"


async def test_paying_after_a_cancel_leaves_the_subscription_canceled(client, db, acme):
    now = datetime.now(UTC)
    await new_subscription(db, org_id=acme.org_id, plan="pro", now=now, trial_used=True)
    canceled = await client.post(
        "/v1/billing/subscription/cancel", json={"at": "now"}, headers=acme.user("org_admin")
    )
    assert canceled.status_code == 200, canceled.text
    async with db() as session:
        assert await status_of(session, acme.org_id) == "canceled"
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    await _fail(db, invoice_id, now)
    async with db() as session, session.begin():
        await mark_paid(session, invoice_id=invoice_id, now=now + SECOND)
    async with db() as session:
        assert await status_of(session, acme.org_id) == "canceled"


async def test_a_trial_hidden_by_past_due_is_neither_credited_nor_charged(client, db, acme):
    """A trial costs nothing: canceling it, or moving to another paid plan, while an older
    invoice's payment failed gives no credit for the unpaid trial and charges no proration."""
    start = datetime.now(UTC) - timedelta(days=2)
    await new_subscription(db, org_id=acme.org_id, plan="free", now=start)
    await _start_pro_trial(db, acme.org_id, start)
    now = start + timedelta(days=1)
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    await _fail(db, invoice_id, now)
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"
        before = await pending_items(session, acme.org_id)

    changed = await client.post(
        CHANGE, json={"plan": "enterprise", "at": "now"}, headers=acme.user("org_admin")
    )
    assert changed.status_code == 200, changed.text
    canceled = await client.post(
        "/v1/billing/subscription/cancel", json={"at": "now"}, headers=acme.user("org_admin")
    )
    assert canceled.status_code == 200, canceled.text
    async with db() as session:
        assert await pending_items(session, acme.org_id) == before
        assert await status_of(session, acme.org_id) == "past_due"
