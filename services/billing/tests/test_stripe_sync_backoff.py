"""Rows Stripe refuses for good back off (a minute, doubling, at most an hour) and never hold
back the rows behind them; operators see them (gauge, the backoff rows); a success clears it.
Stripe refuses through the test front's refusal rule (localstripe_front.py)."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import REGISTRY

from tollgate_billing.invoices.service import void_invoice
from tollgate_billing.stripe_api.customers import SYNC_BATCH, sync_customers
from tollgate_billing.stripe_api.invoice_closing import CLOSE_BATCH, close_invoices_in_stripe
from tollgate_billing.stripe_api.models import StripeSyncBackoff
from tollgate_billing.stripe_api.repository import (
    CUSTOMER_SYNC,
    INVOICE_SYNC,
    StripeRepository,
)
from tollgate_billing.stripe_api.sync_backoff import report_backoffs

from .subscription_helpers import new_subscription
from .test_stripe_invoice_closing import keys_sent, sent_state, stripe_status
from .test_webhooks_stripe import pushed_invoice

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


async def add_customers(sessions, names: list[str], *, created_at: datetime) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in names]
    async with sessions() as session, session.begin():
        for customer_id, name in zip(ids, names, strict=True):
            await session.execute(
                sa.text(
                    "INSERT INTO billing.customers"
                    " (id, org_id, name, plan_key, created_at, updated_at)"
                    " VALUES (:id, :org, :name, 'free', :at, :at)"
                ),
                {"id": customer_id, "org": uuid.uuid4(), "name": name, "at": created_at},
            )
    return ids


async def backoffs(sessions, kind: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, StripeSyncBackoff]:
    found = {}
    async with sessions() as session:
        for object_id in ids:
            row = await StripeRepository(session).backoff_of(kind, object_id)
            if row is not None:
                found[object_id] = row
    return found


async def stripe_ids(sessions, ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    async with sessions() as session:
        repository = StripeRepository(session)
        return {
            customer_id: await repository.stripe_customer_of(customer_id) for customer_id in ids
        }


async def customer_creations(localstripe, ids: list[uuid.UUID]) -> int:
    keys = {f"tollgate-customer-{customer_id}" for customer_id in ids}
    return sum(1 for r in await localstripe.requests() if r["idempotency_key"] in keys)


async def sync_all_customers(sessions, client, *, now: datetime) -> None:
    """The sync loop's round: batches while a batch was full."""
    while await sync_customers(sessions, client, now=now) == SYNC_BATCH:
        pass


async def test_customers_stripe_refuses_back_off_and_the_ones_behind_them_get_synced(
    stripe_app, localstripe
):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    marker = uuid.uuid4().hex
    # A full batch of customers Stripe will never accept, older than 101 good ones: before the
    # backoff every round took the refused batch first and the good ones never got a turn.
    refused = await add_customers(
        sessions,
        [f"Refused-{marker}-{n}" for n in range(SYNC_BATCH)],
        created_at=datetime(2000, 1, 1, tzinfo=UTC),
    )
    good = await add_customers(
        sessions, [f"Good {n}" for n in range(SYNC_BATCH + 1)], created_at=NOW
    )
    await localstripe.refuse("/v1/customers", f"Refused-{marker}")
    try:
        t0 = datetime.now(UTC)
        await sync_all_customers(sessions, client, now=t0)

        assert all((await stripe_ids(sessions, good)).values())
        assert set((await stripe_ids(sessions, refused)).values()) == {None}
        assert await customer_creations(localstripe, refused) == SYNC_BATCH  # once each
        rows = await backoffs(sessions, CUSTOMER_SYNC, refused)
        assert set(rows) == set(refused)
        for row in rows.values():
            assert row.failures == 1
            assert row.next_try_at == t0 + timedelta(minutes=1)
            assert "parameter_invalid_string" in row.last_error
        assert await backoffs(sessions, CUSTOMER_SYNC, good) == {}
        counts = await report_backoffs(sessions)
        assert counts[CUSTOMER_SYNC] >= SYNC_BATCH
        assert (
            REGISTRY.get_sample_value(
                "tollgate_billing_stripe_sync_backoff_rows", {"kind": CUSTOMER_SYNC}
            )
            == counts[CUSTOMER_SYNC]
        )

        # Before the minute is over nothing is asked of Stripe about them.
        await sync_all_customers(sessions, client, now=t0 + timedelta(seconds=59))
        assert await customer_creations(localstripe, refused) == SYNC_BATCH

        # Due: tried again, refused again, the delay doubles.
        t1 = t0 + timedelta(minutes=1)
        await sync_all_customers(sessions, client, now=t1)
        assert await customer_creations(localstripe, refused) == 2 * SYNC_BATCH
        rows = await backoffs(sessions, CUSTOMER_SYNC, refused)
        assert {(r.failures, r.next_try_at) for r in rows.values()} == {
            (2, t1 + timedelta(minutes=2))
        }
    finally:
        await localstripe.lift_refusals()

    # Stripe accepts them now: made at their next try, and the backoff is gone.
    await sync_all_customers(sessions, client, now=t0 + timedelta(hours=1))
    assert all((await stripe_ids(sessions, refused)).values())
    assert await backoffs(sessions, CUSTOMER_SYNC, refused) == {}


async def test_an_invoice_stripe_refuses_to_void_backs_off_up_to_an_hour_and_blocks_nothing(
    stripe_app, localstripe
):
    sessions, client = stripe_app.state.sessionmaker, stripe_app.state.stripe
    stuck_id, stuck_stripe, _ = await pushed_invoice(
        stripe_app, await new_subscription(sessions, now=NOW)
    )
    other_id, other_stripe, _ = await pushed_invoice(
        stripe_app, await new_subscription(sessions, now=NOW)
    )
    # Invoices other tests left to close go first; then only these two are pending.
    while await close_invoices_in_stripe(sessions, client) == CLOSE_BATCH:
        pass
    for invoice_id in (stuck_id, other_id):
        async with sessions() as session, session.begin():
            await void_invoice(session, invoice_id=invoice_id, now=NOW)
    await localstripe.refuse(f"/v1/invoices/{stuck_stripe}/void", "")
    try:
        t0 = datetime.now(UTC)
        # A batch of one: the refused invoice is the older, so it came first every round.
        assert await close_invoices_in_stripe(sessions, client, now=t0, limit=1) == 1
        assert await close_invoices_in_stripe(sessions, client, now=t0, limit=1) == 1

        assert await stripe_status(localstripe, other_stripe) == "void"
        assert await sent_state(stripe_app, other_id) == "void"
        assert await stripe_status(localstripe, stuck_stripe) == "open"
        assert await sent_state(stripe_app, stuck_id) is None
        assert await close_invoices_in_stripe(sessions, client, now=t0, limit=1) == 0

        # Each refusal doubles the wait, up to an hour.
        moment, waits = t0, []
        for _ in range(7):
            row = (await backoffs(sessions, INVOICE_SYNC, [stuck_id]))[stuck_id]
            waits.append(row.next_try_at - moment)
            moment = row.next_try_at
            assert await close_invoices_in_stripe(sessions, client, now=moment, limit=1) == 1
        assert [int(wait.total_seconds() // 60) for wait in waits] == [1, 2, 4, 8, 16, 32, 60]
        row = (await backoffs(sessions, INVOICE_SYNC, [stuck_id]))[stuck_id]
        assert (row.failures, row.next_try_at - moment) == (8, timedelta(hours=1))
        assert "parameter_invalid_string" in row.last_error
        assert (await report_backoffs(sessions))[INVOICE_SYNC] >= 1
    finally:
        await localstripe.lift_refusals()

    assert await close_invoices_in_stripe(sessions, client, now=row.next_try_at, limit=1) == 1
    assert await stripe_status(localstripe, stuck_stripe) == "void"
    assert await sent_state(stripe_app, stuck_id) == "void"
    assert await backoffs(sessions, INVOICE_SYNC, [stuck_id]) == {}
    assert len(await keys_sent(localstripe, f"tollgate-invoice-void-{stuck_id}")) == 9
