"""Serve ASGI apps over real HTTP inside the test's event loop (uvicorn on a free port)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from tollgate_shared.embedded import free_port


class RunningServer:
    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                lifespan="on",
                proxy_headers=False,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "RunningServer":
        self._server.should_exit = False
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._task = None
        self._server.started = False


@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[RunningServer]:
    server = await RunningServer(app, port).start()
    try:
        yield server
    finally:
        await server.stop()
