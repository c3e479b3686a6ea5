"""Forwarding to upstreams: header hygiene, body limit, streaming, 502/504 problems."""

import aiohttp
import structlog
import yarl
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tollgate_gateway.errors import (
    BadGatewayError,
    BadPathError,
    GatewayTimeoutError,
    HeadersTooLargeError,
    PayloadTooLargeError,
)
from tollgate_shared.errors import BadRequestError

logger = structlog.get_logger(__name__)

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
NOT_FROM_UPSTREAM = HOP_BY_HOP | SERVER_SET
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
BUFFERED_BYTES = 64 * 1024
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
    """The whole body, refusing as soon as it passes the limit (chunked bodies included).
    A declared Content-Length was checked before authentication (check_declared_length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The body exceeds {limit} bytes.", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def forwarded_headers(request: Request, extra: dict[str, str]) -> list[tuple[str, str]]:
    # From the raw ASGI headers (names already lower-case): this runs on every request.
    raw = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.scope["headers"]
    ]
    connection = next((value for name, value in raw if name == "connection"), "")
    dropped = CLIENT_HEADERS_DROPPED | {name.strip().lower() for name in connection.split(",")}
    headers = [
        (name, value)
        for name, value in raw
        if name not in dropped and not name.startswith("x-tollgate-")
    ]
    client = request.scope.get("client")
    headers += [
        ("x-forwarded-for", client[0] if client else "unknown"),
        ("x-forwarded-proto", request.scope.get("scheme", "http")),
        ("x-forwarded-host", next((value for name, value in raw if name == "host"), "")),
    ]
    headers += list(extra.items())
    return headers


class UpstreamProxy:
    """Forwards with aiohttp's client: under load it costs a third of httpx's CPU per request
    (docs/performance.md). Bodies are passed through as sent: no decompression, no defaults."""

    def __init__(self, *, connect_timeout: float, timeout: float) -> None:
        self._connect_timeout, self._timeout = connect_timeout, timeout
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, ttl_dns_cache=60),
            auto_decompress=False,
            # Forward what the client sent, not the client library's defaults.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def forward(
        self,
        *,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout_seconds: float | None = None,
    ) -> Response:
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._connect_timeout,
            sock_read=timeout_seconds or self._timeout,
        )
        try:
            upstream = await self._http.request(
                method,
                yarl.URL(url, encoded=True),  # the path was checked raw; send it unchanged
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except TimeoutError as error:
            raise GatewayTimeoutError("The upstream did not answer in time.") from error
        except aiohttp.ClientError as error:
            # The client sees a 502 problem; the operator needs the cause.
            logger.warning("upstream unreachable", upstream=url.split("?")[0], error=repr(error))
            raise BadGatewayError("The upstream is unreachable.") from error
        response_headers = [
            (name.lower(), value)
            for name, value in upstream.raw_headers
            if name.lower().decode("latin-1") not in NOT_FROM_UPSTREAM
        ]
        if upstream.content_length is not None and upstream.content_length <= BUFFERED_BYTES:
            response: Response = await _buffered(upstream)
        else:
            response = StreamingResponse(
                upstream.content.iter_chunked(64 * 1024),
                status_code=upstream.status,
                background=BackgroundTask(upstream.release),
            )
        # Keep repeated headers (Set-Cookie, ...) exactly as the upstream sent them.
        response.raw_headers = response_headers
        return response

    async def close(self) -> None:
        await self._http.close()


async def _buffered(upstream: aiohttp.ClientResponse) -> Response:
    """Small bodies are read at once: one send, no streaming task per response."""
    try:
        content = await upstream.read()
    except TimeoutError as error:
        raise GatewayTimeoutError("The upstream did not finish its answer in time.") from error
    except aiohttp.ClientError as error:
        logger.warning("upstream broke off its answer", error=repr(error))
        raise BadGatewayError("The upstream broke off its answer.") from error
    finally:
        upstream.release()
    return Response(content=content, status_code=upstream.status)
