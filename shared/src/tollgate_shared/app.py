"""create_service_app(): the FastAPI skeleton every service shares.

It owns the lifespan of the common resources (database engine, NATS, outbox relay) and serves
/healthz, /readyz and /metrics. The service adds its routers and its own background tasks.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tollgate_shared.database import create_engine, create_sessionmaker
from tollgate_shared.errors import ServiceUnavailableError, install_problem_handlers
from tollgate_shared.events.connection import connect_nats
from tollgate_shared.events.relay import OutboxRelay
from tollgate_shared.events.streams import ensure_stream, stream_for_service
from tollgate_shared.identity import identity_verifier
from tollgate_shared.logging import configure_logging
from tollgate_shared.middleware import RequestContextMiddleware
from tollgate_shared.settings import ServiceSettings

logger = structlog.get_logger(__name__)
SHUTDOWN_STEP_SECONDS = 5.0


@dataclass
class ServiceRuntime:
    """What the lifespan opened; background tasks receive it."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    nats: Client
    js: JetStreamContext
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


BackgroundTasks = Callable[[ServiceRuntime], Sequence[Coroutine[Any, Any, None]]]


def create_service_app(
    *,
    service: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    description: str,
    background: BackgroundTasks | None = None,
    on_startup: Callable[[ServiceRuntime], Coroutine[Any, Any, None]] | None = None,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            service=service,
            log_format=settings.log_format,
            level=settings.log_level,
            cache_loggers=settings.env != "test",
        )
        engine = create_engine(settings.database_url, schema=service)
        tasks: list[asyncio.Task[Any]] = []
        nats_client: Client | None = None
        try:
            nats_client = await connect_nats(settings.nats_url, name=service)
            js = nats_client.jetstream()
            await ensure_stream(js, stream_for_service(service))
            runtime = ServiceRuntime(settings, engine, create_sessionmaker(engine), nats_client, js)
            app.state.runtime = runtime
            app.state.sessionmaker = runtime.sessionmaker
            app.state.identity_verifier = identity_verifier(settings.identity_public_key)
            if on_startup:
                await on_startup(runtime)
            coroutines = [OutboxRelay(engine=engine, js=js, service=service).run()]
            coroutines += list(background(runtime)) if background else []
            tasks = runtime.tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
            logger.info("service started", service=service)
            yield
        finally:
            await _shut_down(tasks, nats_client, engine)

    app = FastAPI(
        title=f"Tollgate {service}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=service)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database and NATS reachable")
    async def readyz(request: Request) -> JSONResponse:
        runtime: ServiceRuntime = request.app.state.runtime
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception as error:
            raise ServiceUnavailableError("The database is unreachable.") from error
        if not runtime.nats.is_connected:
            raise ServiceUnavailableError("NATS is unreachable.")
        return JSONResponse({"status": "ready", "database": "ok", "nats": "ok"})

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def serve(app_factory: str, *, host: str, port: int, workers: int = 1) -> None:
    """Run a process's app with uvicorn: our logging, no trust in client X-Forwarded-* headers.
    With workers > 1, uvicorn forks that many processes sharing the port (and restarts any
    that dies); each runs the whole app, lifespan included."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=False,
    )


async def _shut_down(
    tasks: list[asyncio.Task[Any]], nats_client: Client | None, engine: AsyncEngine
) -> None:
    """Stop background work, then NATS, then the pool, each with a bound: an orchestrator
    kills a process that takes too long to stop, and a test run must never hang here."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=SHUTDOWN_STEP_SECONDS)
    if nats_client is not None:
        try:
            await asyncio.wait_for(nats_client.drain(), SHUTDOWN_STEP_SECONDS)
        except Exception:
            logger.warning("nats did not drain in time; closing")
            await nats_client.close()
    await asyncio.wait_for(engine.dispose(), SHUTDOWN_STEP_SECONDS)
