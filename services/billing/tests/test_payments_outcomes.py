"""Payment outcomes as a provider (or the ledger) reports them: idempotent per reference, in
any order, with their effects on the invoice and the subscription."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tollgate_billing.payments.outcomes import payment_failed, payment_succeeded

from .payment_helpers import attempts, events, invoice_row, open_invoice, status_of

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
PAID = "tollgate.billing.invoice.paid"
FAILED = "tollgate.billing.invoice.payment_failed"
UPDATED = "tollgate.billing.subscription.updated"


def kinds(recorded: list[tuple[str, dict]]) -> list[str]:
    return [type_ for type_, _ in recorded if "customer.created" not in type_]


async def test_a_failure_makes_the_subscription_past_due_and_schedules_the_first_retry(db, acme):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    async with db() as session, session.begin():
        await payment_failed(
            session,
            invoice_id=invoice_id,
            now=NOW,
            provider="stripe",
            reference="ch_1",
            reason="card_declined",
        )
    async with db() as session:
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.state, invoice.payment_attempt_count) == ("open", 1)
        assert invoice.first_failed_at == NOW
        assert invoice.next_payment_attempt_at == NOW + timedelta(days=1)  # retry days [1, 3, 5]
        assert await status_of(session, acme.org_id) == "past_due"
        assert await attempts(session, invoice_id) == [
            (1, "stripe", "ch_1", "failed", "card_declined")
        ]
        recorded = await events(session, acme.org_id)
    assert kinds(recorded)[-2:] == [FAILED, UPDATED]
    failed = dict(recorded)[FAILED]
    assert (failed["attempt_number"], failed["reason"], failed["state"]) == (
        1,
        "card_declined",
        "open",
    )
    assert failed["next_attempt_at"] == (NOW + timedelta(days=1)).isoformat()
    assert failed["dunning_action_at"] == (NOW + timedelta(days=7)).isoformat()
    assert dict(recorded)[UPDATED]["status"] == "past_due"


async def test_the_same_reference_twice_is_one_attempt_and_one_effect(db, acme):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    for _ in range(2):
        async with db() as session, session.begin():
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=NOW,
                provider="stripe",
                reference="in_fail_1",
                reason="card_declined",
            )
    for moment in (NOW + timedelta(hours=1), NOW + timedelta(hours=2)):
        async with db() as session, session.begin():
            await payment_succeeded(
                session,
                invoice_id=invoice_id,
                now=moment,
                provider="stripe",
                reference="in_paid_1",
            )
    async with db() as session:
        assert [row[:4] for row in await attempts(session, invoice_id)] == [
            (1, "stripe", "in_fail_1", "failed"),
            (2, "stripe", "in_paid_1", "succeeded"),
        ]
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.state, invoice.paid_at) == ("paid", NOW + timedelta(hours=1))
        assert invoice.next_payment_attempt_at is None
        assert await status_of(session, acme.org_id) == "active"
        recorded = kinds(await events(session, acme.org_id))
    assert recorded.count(FAILED) == 1
    assert recorded.count(PAID) == 1
    # created, past_due on the failure, active again on the payment
    assert recorded.count(UPDATED) == 2


async def test_a_failure_reported_after_the_payment_is_recorded_and_changes_nothing(db, acme):
    invoice_id = await open_invoice(db, org_id=acme.org_id, now=NOW)
    async with db() as session, session.begin():
        await payment_succeeded(
            session, invoice_id=invoice_id, now=NOW, provider="stripe", reference="in_ok"
        )
    async with db() as session:
        before = await events(session, acme.org_id)
    async with db() as session, session.begin():
        invoice = await payment_failed(
            session,
            invoice_id=invoice_id,
            now=NOW - timedelta(minutes=5),  # happened earlier, reported later
            provider="stripe",
            reference="in_earlier_failure",
            reason="card_declined",
        )
        assert invoice.state == "paid"
    async with db() as session:
        invoice = await invoice_row(session, invoice_id)
        assert (invoice.state, invoice.first_failed_at, invoice.next_payment_attempt_at) == (
            "paid",
            None,
            None,
        )
        assert await status_of(session, acme.org_id) == "active"
        assert [row[3] for row in await attempts(session, invoice_id)] == ["succeeded", "failed"]
        assert await events(session, acme.org_id) == before


async def test_paying_one_failed_invoice_keeps_past_due_while_another_is_unpaid(db, acme):
    first = await open_invoice(db, org_id=acme.org_id, now=NOW)
    second = await open_invoice(
        db, org_id=acme.org_id, now=NOW, period_start=datetime(2020, 2, 1, tzinfo=UTC)
    )
    for invoice_id, reference in ((first, "f1"), (second, "f2")):
        async with db() as session, session.begin():
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=NOW,
                provider="ledger",
                reference=reference,
                reason="insufficient_funds",
            )
    async with db() as session, session.begin():
        await payment_succeeded(
            session, invoice_id=first, now=NOW, provider="ledger", reference="p1"
        )
    async with db() as session:
        assert await status_of(session, acme.org_id) == "past_due"
    async with db() as session, session.begin():
        await payment_succeeded(
            session, invoice_id=second, now=NOW, provider="ledger", reference="p2"
        )
    async with db() as session:
        assert await status_of(session, acme.org_id) == "active"


async def test_ten_concurrent_copies_of_one_report_make_one_attempt_and_one_event(
    committed_app, acme
):
    """Separate sessions and connections, committed: the invoice lock orders them, the
    unique (provider, reference) makes all but the first a no-op."""
    sessions = committed_app.state.runtime.sessionmaker
    invoice_id = await open_invoice(sessions, org_id=acme.org_id, now=datetime.now(UTC))
    reference = f"in_{uuid.uuid4().hex}"

    async def report() -> None:
        async with sessions() as session, session.begin():
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=NOW,
                provider="stripe",
                reference=reference,
                reason="card_declined",
            )

    await asyncio.gather(*(report() for _ in range(10)))
    async with sessions() as session:
        assert len(await attempts(session, invoice_id)) == 1
        invoice = await invoice_row(session, invoice_id)
        assert invoice.payment_attempt_count == 1
        recorded = kinds(await events(session, acme.org_id))
    assert recorded.count(FAILED) == 1
    assert recorded.count(UPDATED) == 1
