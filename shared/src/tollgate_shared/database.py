"""Async engine and the per-request session that commits exactly once.

Kit tables (outbox, inbox, dead letters) are declared without a schema; the engine's
schema_translate_map puts them in the owning service's schema.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_database_url(url: str) -> str:
    """Accept postgres:// and postgresql:// URLs and pick the psycopg (v3) async driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("TOLLGATE_DATABASE_URL must be a postgresql:// URL")


def create_engine(url: str, *, schema: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        execution_options={"schema_translate_map": {None: schema}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one commit per request; services and repositories only flush."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit runs before the response is sent, so a failed commit is reported
# and a client never reads ahead of its own write. Every endpoint must use this one alias:
# FastAPI shares a session between dependencies only when they declare the same scope.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
