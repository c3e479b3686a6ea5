"""One commit per request, and it happens before the client is told the request succeeded."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .conftest import database_state


class CommitFailed(Exception):
    pass


@asynccontextmanager
async def recording_client(keys_app, db, *, fail_commit=False) -> AsyncIterator[tuple]:
    """A client whose app records when sessions commit and when the response starts."""
    order: list[str] = []

    class RecordingSession(AsyncSession):
        async def commit(self) -> None:
            if fail_commit:
                order.append("commit failed")
                raise CommitFailed("the database went away")
            await super().commit()
            order.append("commit")

    async def recording_app(scope, receive, send):
        async def record_send(message):
            if message["type"] == "http.response.start":
                order.append(f"response {message['status']}")
            await send(message)

        await keys_app(scope, receive, record_send)

    previous = keys_app.state.sessionmaker
    keys_app.state.sessionmaker = async_sessionmaker(class_=RecordingSession, **db.kw)
    transport = httpx.ASGITransport(app=recording_app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://keys") as http:
            yield http, order
    finally:
        keys_app.state.sessionmaker = previous


async def test_the_commit_happens_before_the_response_starts(keys_app, db, acme):
    async with recording_client(keys_app, db) as (http, order):
        response = await http.post("/v1/keys", json={"name": "ordered"}, headers=acme.admin)
    assert response.status_code == 201
    assert order == ["commit", "response 201"]


async def test_a_failed_commit_is_never_answered_with_success(keys_app, db, acme):
    before = await database_state(db)
    async with recording_client(keys_app, db, fail_commit=True) as (http, order):
        response = await http.post("/v1/keys", json={"name": "lost"}, headers=acme.admin)
    assert order == ["commit failed", "response 500"]
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    # Kit limitation: the 500 handler runs outside the request-id middleware, so the header is
    # missing on 500s (reported); the body still carries the id.
    assert response.json()["request_id"]
    assert await database_state(db) == before


async def test_a_refused_request_does_not_commit(keys_app, db, acme):
    async with recording_client(keys_app, db) as (http, order):
        response = await http.post("/v1/keys", json={"name": ""}, headers=acme.admin)
    assert response.status_code == 422
    assert order == ["response 422"]
