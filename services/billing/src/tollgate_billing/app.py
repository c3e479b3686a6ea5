"""The billing service: the plan catalog, the pricing engine, one customer per org and its
subscription."""

from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tollgate_billing.billing_info.endpoints import router as billing_info_router
from tollgate_billing.catalog.endpoints import admin_router as plans_admin_router
from tollgate_billing.catalog.endpoints import router as plans_router
from tollgate_billing.catalog.service import seed_catalog
from tollgate_billing.config import SERVICE, BillingSettings
from tollgate_billing.customers.endpoints import admin_router as customers_admin_router
from tollgate_billing.customers.endpoints import router as customer_router
from tollgate_billing.customers.handlers import organizations_consumer
from tollgate_billing.db_types import utcnow
from tollgate_billing.discounts.endpoints import admin_router as discounts_admin_router
from tollgate_billing.discounts.endpoints import router as discount_router
from tollgate_billing.invoices.closer import close_periods_forever
from tollgate_billing.invoices.endpoints import admin_router as invoices_admin_router
from tollgate_billing.invoices.endpoints import router as invoices_router
from tollgate_billing.invoices.metering_usage import MeteringUsageClient
from tollgate_billing.onboarding.endpoints import router as onboarding_router
from tollgate_billing.payments.collection import collect_forever
from tollgate_billing.payments.collector import collector_for
from tollgate_billing.payments.endpoints import admin_router as payments_admin_router
from tollgate_billing.payments.endpoints import router as payments_router
from tollgate_billing.payments.schedule import DunningSchedule, save_schedule
from tollgate_billing.reports.endpoints import admin_router as reports_admin_router
from tollgate_billing.stripe_api.client import stripe_client
from tollgate_billing.stripe_api.endpoints import router as stripe_router
from tollgate_billing.stripe_api.sync_loop import sync_stripe_forever
from tollgate_billing.subscriptions.endpoints import router as subscription_router
from tollgate_billing.subscriptions.roller import roll_periods_forever
from tollgate_billing.webhooks.endpoints import router as webhooks_router
from tollgate_shared.app import ServiceRuntime, create_service_app
from tollgate_shared.events.streams import ensure_stream, stream_for_service

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: BillingSettings | None = None) -> FastAPI:
    settings = settings or BillingSettings()  # type: ignore[call-arg, unused-ignore]
    # None: Stripe is off (ledger mode), its endpoints answer 409 stripe-disabled.
    stripe = stripe_client(settings) if settings.stripe_enabled else None

    async def on_startup(runtime: ServiceRuntime) -> None:
        # Keys may not have started yet: whoever comes first creates its stream.
        await ensure_stream(runtime.js, stream_for_service("keys"))
        # Before the consumer runs, so a new customer always finds the default plan.
        async with runtime.sessionmaker() as session, session.begin():
            await seed_catalog(session, catalog=settings.catalog)
            # Outcomes a provider reports (webhooks) schedule retries from the stored policy.
            await save_schedule(session, DunningSchedule.from_settings(settings), now=utcnow())

    def background(runtime: ServiceRuntime) -> list[Coroutine[Any, Any, None]]:
        stripe_tasks = (
            [
                sync_stripe_forever(
                    runtime.sessionmaker,
                    stripe,
                    interval_seconds=settings.stripe_sync_interval_seconds,
                )
            ]
            if stripe is not None
            else []
        )
        return [
            *stripe_tasks,
            organizations_consumer(
                js=runtime.js,
                sessionmaker=runtime.sessionmaker,
                name=settings.organizations_consumer_name,
                default_plan=settings.default_plan,
            ).run(),
            close_periods_forever(
                runtime.sessionmaker,
                metering=lambda: app.state.metering_usage,
                grace=timedelta(seconds=settings.usage_grace_seconds),
                interval_seconds=settings.period_close_interval_seconds,
            ),
            roll_periods_forever(
                runtime.sessionmaker,
                default_plan=settings.default_plan,
                interval_seconds=settings.period_roll_interval_seconds,
            ),
            collect_forever(
                runtime.sessionmaker,
                collector=lambda: app.state.payment_collector,
                default_plan=settings.default_plan,
                interval_seconds=settings.payment_collection_interval_seconds,
            ),
        ]

    app = create_service_app(
        service=SERVICE,
        settings=settings,
        description="Plans and prices, the billing customer of every organisation and its "
        "subscription, invoices, payments and dunning.",
        routers=[
            plans_router,
            plans_admin_router,
            customer_router,
            customers_admin_router,
            subscription_router,
            discount_router,
            discounts_admin_router,
            invoices_router,
            invoices_admin_router,
            reports_admin_router,
            payments_router,
            payments_admin_router,
            stripe_router,
            webhooks_router,
            billing_info_router,
            onboarding_router,
        ],
        background=background,
        on_startup=on_startup,
    )
    app.state.settings = settings
    app.state.stripe = stripe
    app.state.payment_collector = collector_for(settings)
    app.state.metering_usage = MeteringUsageClient(
        base_url=settings.metering_url, private_key=settings.identity_private_key
    )
    return app
