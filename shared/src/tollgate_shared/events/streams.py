"""One JetStream stream per producing service (KEYS for tollgate.keys.>), plus USAGE."""

from datetime import timedelta

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

DUPLICATE_WINDOW = timedelta(minutes=10)
MAX_AGE = timedelta(days=30)


def stream_for_service(service: str) -> StreamConfig:
    return StreamConfig(
        name=service.upper(),
        subjects=[f"tollgate.{service}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=MAX_AGE.total_seconds(),
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
    )


USAGE_STREAM = "USAGE"
USAGE_SUBJECTS = "tollgate.gateway.usage.>"


def usage_stream() -> StreamConfig:
    """The gateway's per-request usage events: high volume, so a stream of their own.

    The gateway has no other events, hence no GATEWAY stream (its subjects would overlap).
    Producer (gateway) and consumers (metering) both ensure it with this one config.
    """
    return StreamConfig(
        name=USAGE_STREAM,
        subjects=[USAGE_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=MAX_AGE.total_seconds(),
        # A request id published again within the window (a replayed spool tail) is dropped.
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it when it already exists (idempotent at every start)."""
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
