"""Measures every request and spools the usage event of those that passed authentication.

The event is appended just before the message that completes the response goes to the server,
so a client never holds a complete answer whose event is not already in the spool (ADR 0009).
Which message completes it is the client's view: the one reaching the declared Content-Length
(a proxied response's final empty message comes after that), the headers alone for HEAD, 1xx,
204, 304 and Content-Length 0, else the last body message. It sits outside the request-context
middleware, so it also sees the 500s that one answers.
"""

import time
from datetime import UTC, datetime

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollgate_gateway.usage.event import RequestMeasure, usage_event
from tollgate_gateway.usage.metrics import DROPPED
from tollgate_gateway.usage.spool import UsageSpool
from tollgate_gateway.usage.subject import attached_subject

logger = structlog.get_logger(__name__)


class UsageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        measure = RequestMeasure(
            received_at=datetime.now(UTC), started=time.perf_counter(), method=scope["method"]
        )

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                measure.request_bytes += len(message.get("body", b""))
            return message

        body_length: int | None = None  # what the client will wait for, when it is told

        async def recording_send(message: Message) -> None:
            nonlocal body_length
            if message["type"] == "http.response.start":
                measure.status = message["status"]
                body_length = expected_body_length(measure.method, measure.status, message)
                if body_length == 0:
                    record(scope, measure)
            elif message["type"] == "http.response.body":
                measure.response_bytes += len(message.get("body", b""))
                complete = body_length is not None and measure.response_bytes >= body_length
                if complete or not message.get("more_body", False):
                    record(scope, measure)
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            # A response cut short (client gone, upstream broke mid-stream) still counts once.
            record(scope, measure)


def expected_body_length(method: str, status: int, start: Message) -> int | None:
    """Body bytes after which the client holds the whole response; None: until the end."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return 0
    for name, value in start.get("headers", []):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def record(scope: Scope, measure: RequestMeasure) -> None:
    """Spool the request's usage event, once, if it passed authentication."""
    if measure.recorded:
        return
    measure.recorded = True
    subject = attached_subject(scope)
    spool: UsageSpool | None = getattr(scope["app"].state, "usage_spool", None)
    if subject is None or spool is None:
        return
    try:
        event = usage_event(
            subject,
            measure,
            request_id=scope["state"]["request_id"],
            latency_ms=(time.perf_counter() - measure.started) * 1000,
        )
        spool.append(event.to_json() + b"\n")
    except Exception:
        # Usage must never break an answer; a bug here is logged and counted instead.
        DROPPED.labels("error").inc()
        logger.exception("usage event not recorded")
