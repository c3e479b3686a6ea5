"""The gateway's ASGI entry point: forwarded traffic skips FastAPI.

Every request the gateway forwards goes straight to `Gateway.handle`; only the gateway's own
endpoints (health, metrics, docs, /v1/limits) and the lifespan go through FastAPI. FastAPI's
routing and middleware stack cost more per request than the whole rest of the hot path
(docs/performance.md). Both paths share the outer middleware: request id, access log, metrics
and usage events.
"""

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from tollgate_gateway.forwarding import Gateway
from tollgate_gateway.usage.middleware import UsageMiddleware
from tollgate_shared.errors import ProblemError, problem_from
from tollgate_shared.middleware import RequestContextMiddleware

OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/v1/limits"})
OWN_PREFIXES = ("/docs/", "/openapi/")


class GatewayApp:
    def __init__(self, api: FastAPI, *, service: str) -> None:
        self.api = api
        self.state = api.state  # what tests and the lifespan share
        dispatch = RequestContextMiddleware(
            self._dispatch, service=service, trust_incoming_request_id=False
        )
        # Outermost: it sees the answer of every request, 500s included.
        self._app = UsageMiddleware(dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OWN_PATHS or path.startswith(OWN_PREFIXES):
            await self.api(scope, receive, send)
            return
        scope["app"] = self.api
        request = Request(scope, receive)
        gateway: Gateway = self.api.state.gateway
        try:
            response = await gateway.handle(request)
        except ProblemError as problem:
            response = problem_from(request, problem)
        await response(scope, receive, send)
