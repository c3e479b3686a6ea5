"""The gateway: the one door clients use. Routes, authenticates, authorizes, forwards."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
from tollgate_gateway.routing.proxy import UpstreamProxy
from tollgate_gateway.routing.table import (
    ALL_METHODS,
    RouteTable,
    builtin_routes,
    load_operator_routes,
)
from tollgate_shared.app import SHUTDOWN_STEP_SECONDS
from tollgate_shared.errors import ServiceUnavailableError, install_problem_handlers
from tollgate_shared.events.connection import connect_nats
from tollgate_shared.identity import TokenVerifier, identity_signer
from tollgate_shared.logging import configure_logging
from tollgate_shared.middleware import RequestContextMiddleware

SERVICE = "gateway"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    # Loaded here so a bad routes file stops the process before it serves anything.
    routes = RouteTable(
        builtin_routes(settings.service_urls()) + load_operator_routes(settings.routes_file)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service=SERVICE, log_format=settings.log_format, level=settings.log_level)
        cache = KeyCache(
            max_entries=settings.key_cache_max_entries,
            negative_seconds=settings.key_cache_negative_seconds,
        )
        invalidation = KeyInvalidation(cache)
        nats = await connect_nats(
            settings.nats_url, name=SERVICE, on_reconnected=invalidation.on_reconnected
        )
        await invalidation.start(nats)
        signer = identity_signer(settings.identity_private_key, settings.identity_ttl_seconds)
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
            identity_signer=signer,
            proxy=proxy,
            key_usage=key_usage,
            key_invalidation=invalidation,
        )
        app.state.nats = nats
        app.state.key_invalidation = invalidation
        app.state.service_specs = ServiceSpecs(service_urls=settings.service_urls(), routes=routes)
        flusher = asyncio.create_task(key_usage.run())
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await key_usage.flush()
            await proxy.close()
            await keys.close()
            await app.state.service_specs.close()
            try:
                await asyncio.wait_for(nats.drain(), SHUTDOWN_STEP_SECONDS)
            except Exception:
                await nats.close()

    app = FastAPI(
        title="Tollgate gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=SERVICE, trust_incoming_request_id=False)
    app.include_router(_operations_router())
    app.include_router(docs_router)

    @app.api_route("/{path:path}", methods=sorted(ALL_METHODS), include_in_schema=False)
    async def forward(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        return await gateway.handle(request)

    return app


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
