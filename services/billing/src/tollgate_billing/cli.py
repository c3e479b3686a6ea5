"""tollgate-billing migrate | serve | close-periods | collect-payments | stripe-sync-catalog

The operator commands run what the service's background jobs run, once, now: for a cron job, a
catch-up after downtime, or a first Stripe setup. Each is safe to run while the service runs
(the jobs lock what they take) and to run twice."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_billing.config import SERVICE, BillingSettings
from tollgate_shared.database import create_engine, create_sessionmaker
from tollgate_shared.service_cli import OperatorCommand, run_service_command


def _with_database(
    work: Callable[[BillingSettings, async_sessionmaker[AsyncSession]], Awaitable[str]],
) -> Callable[[], str]:
    def run() -> str:
        settings = BillingSettings()  # type: ignore[call-arg, unused-ignore]

        async def main() -> str:
            engine = create_engine(settings.database_url, schema=SERVICE)
            try:
                return await work(settings, create_sessionmaker(engine))
            finally:
                await engine.dispose()

        return asyncio.run(main())

    return run


async def close_periods_now(
    settings: BillingSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> str:
    """Finalize every period that ended more than the usage grace window ago."""
    from tollgate_billing.invoices.closer import close_periods
    from tollgate_billing.invoices.metering_usage import MeteringUsageClient

    metering = MeteringUsageClient(
        base_url=settings.metering_url, private_key=settings.identity_private_key
    )
    finalized = await close_periods(
        sessionmaker, metering=metering, grace=timedelta(seconds=settings.usage_grace_seconds)
    )
    return f"{len(finalized)} invoice(s) finalized" + "".join(f"\n  {i}" for i in finalized)


async def collect_payments_now(
    settings: BillingSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> str:
    """Collect the invoices due now and apply the dunning actions due."""
    from tollgate_billing.payments.collection import collect_due
    from tollgate_billing.payments.collector import collector_for

    result = await collect_due(
        sessionmaker, collector=collector_for(settings), default_plan=settings.default_plan
    )
    return f"{len(result.collected)} invoice(s) collected, {len(result.dunned)} dunning action(s)"


async def sync_catalog_to_stripe(
    settings: BillingSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> str:
    """Push the catalog to Stripe (stripe_api.catalog); a line saying what was created."""
    from tollgate_billing.stripe_api.catalog import sync_catalog
    from tollgate_billing.stripe_api.client import stripe_client

    if not settings.stripe_enabled:
        raise SystemExit("stripe-sync-catalog: TOLLGATE_BILLING_STRIPE_SECRET_KEY is not set")
    result = await sync_catalog(sessionmaker, stripe_client(settings))
    return (
        f"Stripe catalog in sync: {len(result.products_created)} product(s) and "
        f"{len(result.plans_created)} plan(s) created"
        + "".join(f"\n  {created}" for created in result.products_created + result.plans_created)
    )


OPERATOR_COMMANDS = {
    "close-periods": OperatorCommand(
        "finalize the invoices of periods that ended (as the background job does)",
        _with_database(close_periods_now),
    ),
    "collect-payments": OperatorCommand(
        "collect the invoices due and apply dunning actions due (as the background job does)",
        _with_database(collect_payments_now),
    ),
    "stripe-sync-catalog": OperatorCommand(
        "create the catalog's products and plans in Stripe (idempotent)",
        _with_database(sync_catalog_to_stripe),
    ),
}


def main() -> None:
    run_service_command(
        service=SERVICE,
        default_port=8102,
        migrations_dir=MIGRATIONS_DIR,
        operator_commands=OPERATOR_COMMANDS,
    )


if __name__ == "__main__":
    main()
