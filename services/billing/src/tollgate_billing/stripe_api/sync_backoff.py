"""What the Stripe sync does with a row Stripe refuses: the next try of that row waits a minute,
doubling per refusal up to an hour, so rows refused for good (a customer Stripe will not make, an
invoice it will not void) never fill a round and hold back the rows behind them. Stripe being
unreachable is not a refusal: every row is tried again next round, as before (ADR 0021).

Operators see stuck rows: a warning per refusal with Stripe's error, the gauge
tollgate_billing_stripe_sync_backoff_rows, and the rows in billing.stripe_sync_backoffs."""

import uuid
from datetime import datetime, timedelta

import stripe
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.stripe_api.repository import CUSTOMER_SYNC, INVOICE_SYNC, StripeRepository

logger = structlog.get_logger(__name__)

FIRST_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=1)

BACKOFF_ROWS = Gauge(
    "tollgate_billing_stripe_sync_backoff_rows",
    "Customers and invoices the Stripe sync waits on after Stripe refused them, by kind",
    ["kind"],
)
REFUSALS = Counter(
    "tollgate_billing_stripe_sync_refusals_total",
    "Stripe sync calls Stripe refused (the row then backs off), by kind",
    ["kind"],
)


def is_refusal(error: stripe.StripeError) -> bool:
    """Stripe answered and said no: a retry at once would get the same. Not a refusal: the
    network (timeouts, connections), 404 (the object is gone, or a wrong API base), 409 (a
    concurrent request with the key), 429 (rate limit) and 5xx, which are Stripe's own state
    and end by themselves for every row at once."""
    if isinstance(error, stripe.APIConnectionError):
        return False
    status = error.http_status
    if status is None:
        return False
    return status not in (404, 409, 429) and status < 500


def describe(error: stripe.StripeError) -> str:
    """Stripe's error as an operator reads it: status, code and message (never the key)."""
    return (
        f"{error.http_status} {error.code or type(error).__name__}: {error.user_message or error}"
    )


async def back_off(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    kind: str,
    object_id: uuid.UUID,
    error: stripe.StripeError,
    now: datetime,
    **log_fields: str,
) -> None:
    """Record Stripe's refusal of the row and when to try it next; logged with the error."""
    message = describe(error)
    async with sessionmaker() as session, session.begin():
        backoff = await StripeRepository(session).record_refusal(
            kind,
            object_id,
            error=message,
            now=now,
            first_delay=FIRST_DELAY,
            max_delay=MAX_DELAY,
        )
    REFUSALS.labels(kind=kind).inc()
    logger.warning(
        "stripe refused a sync, backing off",
        kind=kind,
        object_id=str(object_id),
        error=message,
        failures=backoff.failures if backoff else None,
        next_try_at=backoff.next_try_at.isoformat() if backoff else None,
        **log_fields,
    )


async def report_backoffs(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Set the gauge from the table (every replica reports the same count)."""
    async with sessionmaker() as session, session.begin():
        counts = await StripeRepository(session).count_backoffs()
    for kind in (CUSTOMER_SYNC, INVOICE_SYNC):
        BACKOFF_ROWS.labels(kind=kind).set(counts.get(kind, 0))
    return counts
