"""The gateway: the one door clients use. Routes, authenticates, authorizes, forwards."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tollgate_gateway.asgi import GatewayApp
from tollgate_gateway.authentication.authenticator import (
    USER_TOKEN_AUDIENCE,
    USER_TOKEN_ISSUER,
    Authenticator,
)
from tollgate_gateway.authentication.invalidation import KeyInvalidation
from tollgate_gateway.authentication.key_cache import KeyCache
from tollgate_gateway.authentication.key_usage import KeyUsageTracker
from tollgate_gateway.authentication.keys_client import KeysClient
from tollgate_gateway.config import GatewaySettings
from tollgate_gateway.docs.endpoints import router as docs_router
from tollgate_gateway.docs.openapi import ServiceSpecs
from tollgate_gateway.forwarding import Gateway
from tollgate_gateway.identity_tokens import IdentityTokens
from tollgate_gateway.quotas.feed import EntitlementFeed
from tollgate_gateway.quotas.metrics import FLAGGED_ENTITLEMENTS, SNAPSHOT_LOADED
from tollgate_gateway.quotas.snapshot import MeteringClient
from tollgate_gateway.quotas.states import EntitlementStates
from tollgate_gateway.rate_limits.counters import SharedCounters
from tollgate_gateway.rate_limits.endpoints import router as limits_router
from tollgate_gateway.rate_limits.limiter import RateLimiter
from tollgate_gateway.rate_limits.policies import PolicyBook
from tollgate_gateway.rate_limits.replicas import ReplicaRegistry
from tollgate_gateway.routing.proxy import UpstreamProxy
from tollgate_gateway.routing.table import (
    RouteTable,
    builtin_routes,
    load_operator_routes,
)
from tollgate_gateway.usage.metrics import SPOOL_BYTES, SPOOL_LAG_BYTES
from tollgate_gateway.usage.orphans import publish_orphaned_slots
from tollgate_gateway.usage.publisher import UsagePublisher
from tollgate_gateway.usage.spool import UsageSpool
from tollgate_shared.app import SHUTDOWN_STEP_SECONDS
from tollgate_shared.errors import ServiceUnavailableError, install_problem_handlers
from tollgate_shared.events.connection import connect_nats
from tollgate_shared.events.streams import ensure_stream, usage_stream
from tollgate_shared.identity import TokenVerifier, identity_signer
from tollgate_shared.logging import configure_logging

SERVICE = "gateway"
logger = structlog.get_logger(__name__)


def create_app(settings: GatewaySettings | None = None) -> GatewayApp:
    settings = settings or GatewaySettings()
    # Loaded here so a bad routes file stops the process before it serves anything.
    policies = PolicyBook(settings.rate_limit_plans, unknown_plan=settings.rate_limit_unknown_plan)
    routes = RouteTable(
        builtin_routes(settings.service_urls()) + load_operator_routes(settings.routes_file)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            service=SERVICE,
            log_format=settings.log_format,
            level=settings.log_level,
            cache_loggers=settings.env != "test",
        )
        cache = KeyCache(
            max_entries=settings.key_cache_max_entries,
            negative_seconds=settings.key_cache_negative_seconds,
        )
        invalidation = KeyInvalidation(cache)
        signer = identity_signer(settings.identity_private_key, settings.identity_ttl_seconds)
        metering = MeteringClient(
            base_url=settings.metering_url,
            signer=signer,
            timeout_seconds=settings.quota_snapshot_timeout_seconds,
        )
        quotas = EntitlementStates()
        entitlement_feed = EntitlementFeed(
            quotas, metering, resync_seconds=settings.quota_resync_seconds
        )
        FLAGGED_ENTITLEMENTS.set_function(lambda: quotas.flagged_count)
        SNAPSHOT_LOADED.set_function(lambda: entitlement_feed.loaded)

        async def on_reconnected() -> None:
            await invalidation.on_reconnected()
            await entitlement_feed.on_reconnected()

        nats = await connect_nats(settings.nats_url, name=SERVICE, on_reconnected=on_reconnected)
        await invalidation.start(nats)
        # Subscribed before the first snapshot is asked for, so no change falls in between.
        await entitlement_feed.start(nats)
        # Metering down: the gateway serves anyway (fails open) and the feed keeps retrying.
        snapshot_loaded = await entitlement_feed.load()
        await ensure_stream(nats.jetstream(), usage_stream())
        replicas = await ReplicaRegistry.open(
            nats.jetstream(), bucket=f"{settings.rate_limit_bucket}_REPLICAS"
        )
        limiter = RateLimiter(
            await SharedCounters.open(
                nats.jetstream(),
                bucket=settings.rate_limit_bucket,
                timeout_seconds=settings.rate_limit_timeout_seconds,
            ),
            replicas,
            max_lease=settings.rate_limit_max_lease,
            idle_return_seconds=settings.rate_limit_idle_return_seconds,
            is_connected=lambda: nats.is_connected,
        )
        spool = UsageSpool.open(
            settings.usage_spool_dir.resolve(), max_bytes=settings.usage_spool_max_bytes
        )
        logger.info("usage spool opened", directory=str(spool.directory), lag_bytes=spool.lag_bytes)
        SPOOL_BYTES.set_function(lambda: spool.total_bytes)
        SPOOL_LAG_BYTES.set_function(lambda: spool.lag_bytes)
        usage_publisher = UsagePublisher(
            spool=spool,
            nats_client=nats,
            ack_timeout_seconds=settings.usage_publish_timeout_seconds,
        )
        keys = KeysClient(
            base_url=settings.keys_url, signer=signer, timeout_seconds=settings.keys_timeout_seconds
        )
        key_usage = KeyUsageTracker(keys, flush_seconds=settings.key_usage_flush_seconds)
        proxy = UpstreamProxy(
            connect_timeout=settings.upstream_connect_timeout_seconds,
            timeout=settings.upstream_timeout_seconds,
        )
        app.state.gateway = Gateway(
            settings=settings,
            routes=routes,
            authenticator=Authenticator(
                cache=cache,
                keys=keys,
                user_tokens=TokenVerifier(
                    settings.user_token_public_key,
                    issuer=USER_TOKEN_ISSUER,
                    audience=USER_TOKEN_AUDIENCE,
                ),
                refresh_after_seconds=settings.key_cache_refresh_seconds,
            ),
            identity_tokens=IdentityTokens(signer),
            proxy=proxy,
            key_usage=key_usage,
            key_invalidation=invalidation,
            limiter=limiter,
            policies=policies,
            quotas=quotas,
        )
        app.state.nats = nats
        app.state.usage_spool = spool
        app.state.usage_publisher = usage_publisher
        app.state.key_invalidation = invalidation
        app.state.entitlement_feed = entitlement_feed
        app.state.service_specs = ServiceSpecs(service_urls=settings.service_urls(), routes=routes)
        tasks = [
            asyncio.create_task(key_usage.run()),
            asyncio.create_task(limiter.run()),
            asyncio.create_task(replicas.run()),
            asyncio.create_task(entitlement_feed.run(loaded=snapshot_loaded)),
            asyncio.create_task(usage_publisher.run()),
            asyncio.create_task(
                publish_orphaned_slots(
                    spool,
                    nats_client=nats,
                    js=usage_publisher.js,
                    ack_timeout_seconds=settings.usage_publish_timeout_seconds,
                )
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a task stuck in a client library must not hold the process forever.
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_STEP_SECONDS)
            if stuck:
                logger.warning("background tasks did not stop in time", tasks=len(stuck))
            await key_usage.flush()
            await limiter.close(SHUTDOWN_STEP_SECONDS)
            await replicas.leave()
            # Requests are finished by now: publish the spool's tail while NATS is still open.
            await usage_publisher.drain(SHUTDOWN_STEP_SECONDS)
            spool.close()
            await proxy.close()
            await keys.close()
            await metering.close()
            await app.state.service_specs.close()
            try:
                await asyncio.wait_for(nats.drain(), SHUTDOWN_STEP_SECONDS)
            except Exception:
                with contextlib.suppress(Exception):  # NATS down: nothing left to flush
                    await nats.close()

    app = FastAPI(
        title="Tollgate gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_problem_handlers(app)
    app.include_router(_operations_router())
    app.include_router(docs_router)
    app.include_router(limits_router)
    return GatewayApp(app, service=SERVICE)


def _operations_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        # The keys service being down is not a reason to stop serving cached keys.
        if not request.app.state.nats.is_connected:
            raise ServiceUnavailableError("NATS is unreachable.")
        return JSONResponse({"status": "ready", "nats": "ok"})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
