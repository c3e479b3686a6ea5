"""The collection job (every replica runs one loop; also the operator's trigger): collects the
open invoices whose next payment attempt is due through the configured collector, and applies
the dunning action to those still unpaid at the end of their grace period.

Each invoice is claimed in a short transaction with SKIP LOCKED, so replicas share the work;
the claim moves its next attempt a lease ahead, so the collector can call a provider outside
any transaction and a crash mid-call is retried once the lease ends."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.payments.collector import PaymentCollector
from tollgate_billing.payments.dunning import apply_dunning_action
from tollgate_billing.payments.repository import PaymentRepository
from tollgate_billing.payments.schedule import current_schedule

logger = structlog.get_logger(__name__)

COLLECTED = Counter(
    "tollgate_billing_collections_total",
    "Invoice collections and dunning actions run, by kind and outcome",
    ["kind", "outcome"],
)
# How long a claimed invoice waits before another round tries it, should its collector not
# report back (a crash, a provider that did not answer).
CLAIM_LEASE = timedelta(minutes=15)


@dataclass
class CollectionRound:
    collected: list[uuid.UUID] = field(default_factory=list)  # tried (paid or not)
    dunned: list[uuid.UUID] = field(default_factory=list)  # the dunning action applied


async def collect_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    collector: PaymentCollector,
    default_plan: str,
    now: datetime | None = None,
    limit: int = 500,
) -> CollectionRound:
    """One round over the invoices due at `now` (at most limit)."""
    now = now or utcnow()
    result = CollectionRound()
    seen: list[uuid.UUID] = []
    while len(seen) < limit:
        async with sessionmaker() as session, session.begin():
            invoice = await PaymentRepository(session).next_due_invoice(now, skip=seen)
            if invoice is None:
                break
            seen.append(invoice.id)
            schedule = await current_schedule(session)
            dunning_due = (
                invoice.first_failed_at is not None
                and schedule.action_at(invoice.first_failed_at) <= now
            )
            if dunning_due:
                await apply_dunning_action(
                    session,
                    invoice=invoice,
                    action=schedule.action,
                    now=now,
                    default_plan=default_plan,
                )
            else:
                invoice.next_payment_attempt_at = now + CLAIM_LEASE
                await InvoiceRepository(session).save(invoice)
        if dunning_due:
            result.dunned.append(invoice.id)
            COLLECTED.labels("dunning", "done").inc()
            continue
        try:
            await collector.collect(sessionmaker, invoice_id=invoice.id, now=now)
        except Exception:
            # The claim's lease ends the wait: a later round tries again.
            logger.exception("invoice not collected", invoice_id=str(invoice.id))
            COLLECTED.labels("collection", "failed").inc()
            continue
        result.collected.append(invoice.id)
        COLLECTED.labels("collection", "done").inc()
    return result


async def collect_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    collector: Callable[[], PaymentCollector],
    default_plan: str,
    interval_seconds: float,
) -> None:
    while True:
        try:
            await collect_due(sessionmaker, collector=collector(), default_plan=default_plan)
        except Exception:
            logger.exception("collection round failed")  # the database gone: next round
        await asyncio.sleep(interval_seconds)
