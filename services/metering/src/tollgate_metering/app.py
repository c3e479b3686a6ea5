"""The metering service: meters and deduplicated usage events, from the API and the gateway."""

from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tollgate_metering.analytics.endpoints import router as analytics_router
from tollgate_metering.config import SERVICE, MeteringSettings
from tollgate_metering.entitlements.catalog import PlanCatalog
from tollgate_metering.entitlements.endpoints import router as entitlements_router
from tollgate_metering.entitlements.evaluator import evaluate_changes_forever
from tollgate_metering.gateway_usage.handlers import UsageConsumers
from tollgate_metering.ingestion.endpoints import router as events_router
from tollgate_metering.meters.endpoints import router as meters_router
from tollgate_metering.organizations.handlers import organizations_consumer
from tollgate_metering.retention import forget_expired_forever
from tollgate_metering.usage.endpoints import router as usage_router
from tollgate_shared.app import ServiceRuntime, create_service_app
from tollgate_shared.events.streams import ensure_stream, stream_for_service, usage_stream
from tollgate_shared.identity import service_verifier

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: MeteringSettings | None = None) -> FastAPI:
    settings = settings or MeteringSettings()  # type: ignore[call-arg, unused-ignore]
    catalog = PlanCatalog(plans=settings.plan_entitlements, unknown_plan=settings.unknown_plan)

    async def on_startup(runtime: ServiceRuntime) -> None:
        # The gateway and keys may not have started yet: whoever comes first creates a stream.
        await ensure_stream(runtime.js, usage_stream())
        await ensure_stream(runtime.js, stream_for_service("keys"))

    def background(runtime: ServiceRuntime) -> list[Coroutine[Any, Any, None]]:
        consumer = UsageConsumers(
            js=runtime.js,
            sessionmaker=runtime.sessionmaker,
            name=settings.usage_consumer_name,
            batch_size=settings.usage_batch_size,
            tasks=settings.usage_consumer_tasks,
        )
        return [
            consumer.run(),
            organizations_consumer(
                js=runtime.js,
                sessionmaker=runtime.sessionmaker,
                name=settings.organizations_consumer_name,
            ).run(),
            evaluate_changes_forever(
                runtime.sessionmaker,
                catalog=catalog,
                interval_seconds=settings.entitlement_check_interval_seconds,
            ),
            forget_expired_forever(
                runtime.sessionmaker,
                retention=timedelta(days=settings.raw_retention_days),
                consumer=settings.usage_consumer_name,
                interval_seconds=settings.retention_sweep_interval_seconds,
            ),
        ]

    app = create_service_app(
        service=SERVICE,
        settings=settings,
        description="Meters and usage events: reported by the operator's services through the "
        "API, and one api_requests event per gateway request.",
        routers=[
            meters_router,
            events_router,
            usage_router,
            entitlements_router,
            analytics_router,
        ],
        background=background,
        on_startup=on_startup,
    )
    app.state.settings = settings
    app.state.billing_identity_verifier = (
        service_verifier(settings.billing_identity_public_key, caller="billing", callee=SERVICE)
        if settings.billing_identity_public_key
        else None
    )
    app.state.plan_catalog = catalog
    return app
