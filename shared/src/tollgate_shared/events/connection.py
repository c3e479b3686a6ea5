"""NATS connection that keeps reconnecting instead of giving up."""

from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client

logger = structlog.get_logger(__name__)


async def connect_nats(
    url: str, *, name: str, on_reconnected: Callable[[], Awaitable[None]] | None = None
) -> Client:
    async def log_disconnect() -> None:
        logger.warning("nats disconnected", client=name)

    async def log_reconnect() -> None:
        logger.info("nats reconnected", client=name)
        if on_reconnected is not None:
            await on_reconnected()

    async def log_error(error: Exception) -> None:
        logger.warning("nats error", client=name, error=repr(error))

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=log_disconnect,
        reconnected_cb=log_reconnect,
        error_cb=log_error,
    )
