"""Forwarding to upstreams: header hygiene, body limit, streaming, 502/504 problems."""

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from tollgate_gateway.errors import (
    BadGatewayError,
    BadPathError,
    GatewayTimeoutError,
    HeadersTooLargeError,
    PayloadTooLargeError,
)
from tollgate_shared.errors import BadRequestError

# The gateway's own server sets these on every response; the upstream's copies would duplicate.
SERVER_SET = frozenset({"date", "server", "x-request-id"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded from the client: credentials stay at the gateway, identity is ours to assert.
CLIENT_HEADERS_DROPPED = HOP_BY_HOP | frozenset(
    {
        "host",
        "content-length",
        "authorization",
        "x-api-key",
        "cookie",
        "x-request-id",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
_FORBIDDEN_IN_PATH = ("%2e", "%2f", "%5c", "%00", "\\", "//")


def check_path(raw_path: str) -> None:
    """Refuse traversal and encoded separators before anything is routed or forwarded."""
    lowered = raw_path.lower()
    if any(marker in lowered for marker in _FORBIDDEN_IN_PATH):
        raise BadPathError("Encoded separators, dot segments and empty segments are refused.")
    if any(segment in (".", "..") for segment in raw_path.split("/")):
        raise BadPathError("Dot segments are refused.")


def check_header_size(headers: list[tuple[bytes, bytes]], limit: int) -> None:
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limit:
        raise HeadersTooLargeError(f"Request headers exceed {limit} bytes.", limit_bytes=limit)


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise BadRequestError("Content-Length must be a number.")
    if int(declared) > limit:
        raise PayloadTooLargeError(f"The body exceeds {limit} bytes.", limit_bytes=limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing as soon as it passes the limit (chunked bodies included)."""
    check_declared_length(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The body exceeds {limit} bytes.", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def forwarded_headers(request: Request, extra: dict[str, str]) -> list[tuple[str, str]]:
    connection_listed = {
        name.strip().lower() for name in request.headers.get("connection", "").split(",")
    }
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in CLIENT_HEADERS_DROPPED
        and name not in connection_listed
        and not name.startswith("x-tollgate-")
    ]
    client_host = request.client.host if request.client else "unknown"
    headers += [
        ("x-forwarded-for", client_host),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", request.headers.get("host", "")),
    ]
    headers += list(extra.items())
    return headers


class UpstreamProxy:
    def __init__(self, *, connect_timeout: float, timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            follow_redirects=False,
        )
        # Forward what the client sent, not httpx's defaults (Accept-Encoding, User-Agent...).
        self._http.headers.clear()

    async def forward(
        self,
        *,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout_seconds: float | None = None,
    ) -> StreamingResponse:
        upstream_request = self._http.build_request(
            method,
            url,
            headers=headers,
            content=body,
            timeout=httpx.Timeout(timeout_seconds, connect=self._connect_timeout)
            if timeout_seconds
            else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            upstream = await self._http.send(upstream_request, stream=True)
        except httpx.TimeoutException as error:
            raise GatewayTimeoutError("The upstream did not answer in time.") from error
        except httpx.HTTPError as error:
            raise BadGatewayError("The upstream is unreachable.") from error
        response_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in upstream.headers.multi_items()
            if name.lower() not in HOP_BY_HOP and name.lower() not in SERVER_SET
        ]
        response = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        # Keep repeated headers (Set-Cookie, ...) exactly as the upstream sent them.
        response.raw_headers = response_headers
        return response

    async def close(self) -> None:
        await self._http.aclose()
