"""Per-test isolation: every test runs inside an outer transaction that is rolled back."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@asynccontextmanager
async def rolled_back_sessions(
    engine: AsyncEngine, app: FastAPI | None = None
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions whose commits become savepoints of one transaction rolled back at the end.

    When app is given, its request sessions use them for the duration.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        sessionmaker = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        previous = getattr(app.state, "sessionmaker", None) if app else None
        if app is not None:
            app.state.sessionmaker = sessionmaker
        try:
            yield sessionmaker
        finally:
            if app is not None:
                app.state.sessionmaker = previous
            await transaction.rollback()
