"""Pure-ASGI request middleware: request id, structlog context, metrics, one access log line."""

import json
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollgate_shared.errors import PROBLEM_BASE, PROBLEM_JSON
from tollgate_shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
ROUTE_LABEL = "tollgate.route_label"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

logger = structlog.get_logger("tollgate.access")


def request_id_from(headers: list[tuple[bytes, bytes]], *, trust_incoming: bool) -> str:
    """Keep a well-formed incoming X-Request-Id (set by the gateway) if trusted, else mint one."""
    if trust_incoming:
        for name, value in headers:
            if name == REQUEST_ID_HEADER:
                candidate = value.decode("latin-1")
                if _SAFE_REQUEST_ID.match(candidate):
                    return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, service: str, trust_incoming_request_id: bool = True
    ) -> None:
        self.app, self.service = app, service
        # Services trust the gateway's id; the gateway mints its own (ids key usage dedupe).
        self.trust_incoming_request_id = trust_incoming_request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(
            scope["headers"], trust_incoming=self.trust_incoming_request_id
        )
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                nonlocal response_started
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            # Answered here rather than by Starlette's outermost error middleware, so that even
            # a 500 carries its request id in the header as well as in the body.
            logger.exception("unhandled error", path=scope["path"])
            if response_started:
                raise
            await _internal_error(scope, send_with_request_id, request_id)
        finally:
            elapsed = time.perf_counter() - started
            # A proxy names its routes itself (ROUTE_LABEL); an app has its path templates.
            route_name = scope.get(ROUTE_LABEL) or getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], route_name, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], route_name).observe(elapsed)
            if scope["path"] not in _QUIET_PATHS:
                logger.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


async def _internal_error(scope: Scope, send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_BASE + "internal-error",
            "title": "Internal server error",
            "status": 500,
            "detail": "An unexpected error happened; it has been logged with this request id.",
            "instance": scope["path"],
            "request_id": request_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
