"""Dunning in time: an invoice's collection at its finalization, retries on the schedule after
the first failure, and the dunning action at the end of the grace period (downgrade or
suspend), with an injected `now`."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tollgate_billing.events import BillingEvent
from tollgate_billing.invoices.closer import close_periods
from tollgate_billing.payments.collection import collect_due
from tollgate_billing.payments.collector import LedgerCollector
from tollgate_billing.payments.outcomes import payment_failed
from tollgate_billing.subscriptions.roller import roll_due_subscriptions
from tollgate_shared.events.streams import ensure_stream, stream_for_service

from .conftest import assert_problem, published_on_billing
from .payment_helpers import attempts, events, invoice_row, open_invoice, status_of
from .subscription_helpers import load, new_subscription, pending_items

START = datetime(2026, 3, 14, 10, 47, 42, tzinfo=UTC)
END = datetime(2026, 4, 14, 10, 47, 42, tzinfo=UTC)
GRACE = timedelta(hours=1)
T0 = END + GRACE  # the period's invoice is finalized: its first collection is due
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
CARD = {"exp_month": 12, "exp_year": datetime.now(UTC).year + 2}


async def finalized_pro_invoice(db, billing_app, org) -> uuid.UUID:
    """A Pro month (trial used) from START to END, finalized at T0: $99.00 owed."""
    await new_subscription(db, org_id=org.org_id, plan="pro", now=START, trial_used=True)
    await roll_due_subscriptions(db, default_plan="free", now=END + SECOND)
    [invoice_id] = await close_periods(
        db, metering=billing_app.state.metering_usage, grace=GRACE, now=T0
    )
    return invoice_id


async def collect(db, now: datetime):
    return await collect_due(db, collector=LedgerCollector(), default_plan="free", now=now)


async def use_card(client, org, number: str) -> None:
    response = await client.put(
        "/v1/billing/payment-method",
        json={"card_number": number, **CARD},
        headers=org.user("org_admin"),
    )
    assert response.status_code == 200, response.text


async def set_action(db, action: str) -> None:
    """The stored policy, changed inside this test's rolled-back transaction only."""
    async with db() as session, session.begin():
        await session.execute(
            sa.text("UPDATE billing.dunning_policy SET action = :a"), {"a": action}
        )


async def test_a_declined_card_is_retried_on_schedule_then_downgraded(
    client, db, billing_app, metering, acme
):
    invoice_id = await finalized_pro_invoice(db, billing_app, acme)
    await use_card(client, acme, "4000000000000341")
    async with db() as session:
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.total, invoice.next_payment_attempt_at) == (9900, T0)

    # The first try at finalization, then days 1, 3 and 5 after the first failure; never
    # a moment early; then the dunning action at day 7.
    assert (await collect(db, T0 - SECOND)).collected == []
    timeline = [T0, T0 + DAY, T0 + 3 * DAY, T0 + 5 * DAY]
    for moment in timeline:
        assert (await collect(db, moment - SECOND)).collected == []
        assert (await collect(db, moment)).collected == [invoice_id]
        async with db() as session:
            assert await status_of(session, acme.org_id) == "past_due"
    assert (await collect(db, T0 + 7 * DAY - SECOND)).collected == []
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"
    done = await collect(db, T0 + 7 * DAY)
    assert (done.collected, done.dunned) == ([], [invoice_id])
    assert (await collect(db, T0 + 30 * DAY)).dunned == []

    async with db() as session:
        assert [row[0::3] for row in await attempts(session, invoice_id)] == [
            (1, "failed"),
            (2, "failed"),
            (3, "failed"),
            (4, "failed"),
        ]
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.state, invoice.next_payment_attempt_at) == ("uncollectible", None)
        subscription = await load(session, acme.org_id)
        assert (subscription.plan_key, subscription.status) == ("free", "canceled")
        assert subscription.canceled_at == T0 + 7 * DAY
        # No credit for the unpaid Pro time, and the Pro stretch the downgrade ended bills no
        # base fee: another charge would only start another dunning.
        assert await pending_items(session, acme.org_id) == []
        ended = (
            await session.execute(
                sa.text(
                    "SELECT base_fee_due, plan_key FROM billing.invoices"
                    " WHERE org_id = :org AND period_start = :start"
                ),
                {"org": acme.org_id, "start": END},
            )
        ).one()
        assert tuple(ended) == (False, "pro")
        recorded = await events(session, acme.org_id)
    failures = [data for type_, data in recorded if type_ == BillingEvent.INVOICE_PAYMENT_FAILED]
    assert [(data["attempt_number"], data["next_attempt_at"]) for data in failures] == [
        (1, (T0 + DAY).isoformat()),
        (2, (T0 + 3 * DAY).isoformat()),
        (3, (T0 + 5 * DAY).isoformat()),
        (4, None),
    ]
    assert {data["dunning_action_at"] for data in failures} == {(T0 + 7 * DAY).isoformat()}
    changes = [
        (type_, data.get("status") or data.get("state"))
        for type_, data in recorded
        if type_ not in (BillingEvent.INVOICE_PAYMENT_FAILED, BillingEvent.PAYMENT_METHOD_UPDATED)
    ]
    assert changes[-4:] == [
        (BillingEvent.INVOICE_FINALIZED, "open"),
        (BillingEvent.SUBSCRIPTION_UPDATED, "past_due"),
        (BillingEvent.INVOICE_MARKED_UNCOLLECTIBLE, "uncollectible"),
        (BillingEvent.SUBSCRIPTION_CANCELED, "canceled"),
    ]


async def test_suspended_after_the_grace_period_and_active_again_once_paid(
    client, db, billing_app, metering, acme
):
    await set_action(db, "suspend")
    invoice_id = await finalized_pro_invoice(db, billing_app, acme)
    await use_card(client, acme, "4000000000009995")
    for moment in (T0, T0 + DAY, T0 + 3 * DAY, T0 + 5 * DAY):
        await collect(db, moment)
    assert (await collect(db, T0 + 7 * DAY)).dunned == [invoice_id]
    async with db() as session:
        subscription = await load(session, acme.org_id)
        assert (subscription.status, subscription.plan_key) == ("suspended", "pro")
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.state, invoice.next_payment_attempt_at) == ("open", None)
        suspended = [data for type_, data in await events(session, acme.org_id)][-1]
    assert (suspended["status"], suspended["version"]) == ("suspended", subscription.version)
    # No more automatic tries while suspended.
    assert (await collect(db, T0 + 30 * DAY)).collected == []

    # The customer puts a working card on file and pays: active again, the invoice paid.
    await use_card(client, acme, "4242424242424242")
    paid = await client.post(
        f"/v1/billing/invoices/{invoice_id}/pay", headers=acme.user("billing_admin")
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["state"] == "paid"
    async with db() as session:
        assert await status_of(session, acme.org_id) == "active"
        recorded = [
            (type_, data.get("status") or data.get("state"))
            for type_, data in await events(session, acme.org_id)
            if "payment_method" not in type_
        ]
    assert recorded[-3:] == [
        (BillingEvent.SUBSCRIPTION_UPDATED, "suspended"),
        (BillingEvent.INVOICE_PAID, "paid"),
        (BillingEvent.SUBSCRIPTION_UPDATED, "active"),
    ]


async def test_the_operators_mark_paid_ends_dunning_too(
    client, db, billing_app, metering, acme, operator
):
    invoice_id = await finalized_pro_invoice(db, billing_app, acme)
    await collect(db, T0)  # no method on file
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"
        assert [row[4] for row in await attempts(session, invoice_id)] == ["no_payment_method"]
    response = await client.post(f"/v1/billing/admin/invoices/{invoice_id}/pay", headers=operator)
    assert response.json()["state"] == "paid"
    async with db() as session:
        assert await status_of(session, acme.org_id) == "active"
        assert (await invoice_row(session, invoice_id)).next_payment_attempt_at is None
    assert (await collect(db, T0 + DAY)).collected == []


async def test_voiding_a_failed_invoice_lifts_the_suspension(
    client, db, billing_app, metering, acme, operator
):
    await set_action(db, "suspend")
    invoice_id = await finalized_pro_invoice(db, billing_app, acme)
    await collect(db, T0)
    await collect(db, T0 + 7 * DAY)
    async with db() as session:
        assert await status_of(session, acme.org_id) == "suspended"
    voided = await client.post(f"/v1/billing/admin/invoices/{invoice_id}/void", headers=operator)
    assert voided.json()["state"] == "void"
    async with db() as session:
        assert await status_of(session, acme.org_id) == "active"
    assert_problem(
        await client.post(f"/v1/billing/invoices/{invoice_id}/pay", headers=acme.user("org_admin")),
        409,
        "invoice-state",
    )


async def test_the_roller_keeps_a_past_due_or_suspended_subscription_so(db, acme):
    """Periods go on (and are invoiced) while the organisation owes; a pending cancel moves
    it to the default plan without lifting past_due."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=now)
    async with db() as session, session.begin():
        await payment_failed(
            session,
            invoice_id=invoice_id,
            now=now,
            provider="ledger",
            reference="r1",
            reason="card_declined",
        )
    async with db() as session:
        before = await load(session, acme.org_id)
        period_end = before.current_period_end
    await roll_due_subscriptions(db, default_plan="free", now=period_end + SECOND)
    async with db() as session:
        rolled = await load(session, acme.org_id)
        assert rolled.status == "past_due"
        assert rolled.current_period_start == period_end
    for status in ("suspended", "past_due"):
        async with db() as session, session.begin():
            await session.execute(
                sa.text(
                    "UPDATE billing.subscriptions SET status = :s, cancel_at_period_end = true,"
                    " plan_key = 'pro' WHERE org_id = :org"
                ),
                {"s": status, "org": acme.org_id},
            )
        async with db() as session:
            end = (await load(session, acme.org_id)).current_period_end
        await roll_due_subscriptions(db, default_plan="free", now=end + SECOND)
        async with db() as session:
            moved = await load(session, acme.org_id)
            assert (moved.plan_key, moved.status) == ("free", status)


async def test_replicas_share_due_invoices_and_collect_each_once(committed_app, mint_identity):
    """Two collection rounds at once on the committed database (SKIP LOCKED): each due
    invoice is tried exactly once."""
    from .conftest import Org

    sessions = committed_app.state.runtime.sessionmaker
    now = datetime.now(UTC)
    orgs = [Org(uuid.uuid4(), mint_identity) for _ in range(6)]
    ids = [await open_invoice(sessions, org_id=org.org_id, now=now) for org in orgs]
    async with sessions() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE billing.invoices SET next_payment_attempt_at = :at WHERE id = ANY(:ids)"
            ),
            {"at": now - DAY * 365 * 5, "ids": ids},  # before anything else ever due there
        )
    rounds = await asyncio.gather(*(collect(sessions, now) for _ in range(2)))
    collected = [invoice for done in rounds for invoice in done.collected if invoice in ids]
    # (The app's own background round may take some of them too: never one twice.)
    assert len(collected) == len(set(collected))
    async with sessions() as session:
        for invoice_id in ids:
            assert len(await attempts(session, invoice_id)) == 1


async def test_a_payment_failure_is_published_on_nats(committed_app, nats_client, mint_identity):
    from .conftest import Org

    org = Org(uuid.uuid4(), mint_identity)
    sessions = committed_app.state.runtime.sessionmaker
    js = nats_client.jetstream()
    await ensure_stream(js, stream_for_service("billing"))
    watcher = f"billing-payment-watch-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        "BILLING",
        ConsumerConfig(
            durable_name=watcher,
            filter_subject=BillingEvent.INVOICE_PAYMENT_FAILED.value,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
        ),
    )
    try:
        invoice_id = await open_invoice(sessions, org_id=org.org_id, now=datetime.now(UTC))
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=now,
                provider="ledger",
                reference=f"r-{uuid.uuid4().hex}",
                reason="insufficient_funds",
            )
        published = await published_on_billing(js, watcher, f"invoices/{invoice_id}")
        assert published.orgid == str(org.org_id)
        assert published.data["reason"] == "insufficient_funds"
        assert published.data["attempt_number"] == 1
        assert published.data["next_attempt_at"] == (now + DAY).isoformat()
    finally:
        await js.delete_consumer("BILLING", watcher)
