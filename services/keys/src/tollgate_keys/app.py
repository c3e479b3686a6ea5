"""The keys service: organisations, users, memberships, API keys, sign-in and signup."""

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tollgate_keys.admin.bootstrap import ensure_super_admin
from tollgate_keys.admin.endpoints import router as admin_router
from tollgate_keys.api_keys.endpoints import router as keys_router
from tollgate_keys.api_keys.expiry import announce_expiries_forever
from tollgate_keys.api_keys.internal_endpoints import router as internal_router
from tollgate_keys.config import KeysSettings
from tollgate_keys.events import SERVICE
from tollgate_keys.members.endpoints import invitations_router
from tollgate_keys.members.endpoints import router as members_router
from tollgate_keys.organizations.endpoints import router as organization_router
from tollgate_keys.organizations.handlers import subscriptions_consumer
from tollgate_keys.signup.endpoints import router as signup_router
from tollgate_keys.users.endpoints import auth_router, me_router
from tollgate_shared.app import ServiceRuntime, create_service_app
from tollgate_shared.events.streams import ensure_stream, stream_for_service

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: KeysSettings | None = None) -> FastAPI:
    settings = settings or KeysSettings()  # type: ignore[call-arg, unused-ignore]

    async def on_startup(runtime: ServiceRuntime) -> None:
        await ensure_super_admin(runtime.sessionmaker, settings)
        # Billing may not have started yet: whoever comes first creates its stream.
        await ensure_stream(runtime.js, stream_for_service("billing"))

    def background(runtime: ServiceRuntime) -> list[Coroutine[Any, Any, None]]:
        return [
            announce_expiries_forever(
                runtime.sessionmaker, interval_seconds=settings.expiry_sweep_interval_seconds
            ),
            subscriptions_consumer(
                js=runtime.js,
                sessionmaker=runtime.sessionmaker,
                name=settings.subscriptions_consumer_name,
            ).run(),
        ]

    app = create_service_app(
        service=SERVICE,
        settings=settings,
        description="Organisations, users, memberships and roles, API keys, sign-in and signup.",
        routers=[
            signup_router,
            auth_router,
            me_router,
            organization_router,
            members_router,
            invitations_router,
            keys_router,
            admin_router,
            internal_router,
        ],
        background=background,
        on_startup=on_startup,
    )
    app.state.settings = settings
    return app
