"""Every kind of bad request gets a clear 4xx problem from the gateway, and the upstream behind
the route sees none of them (it counts what reaches it)."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tollgate_gateway.app import create_app as create_gateway
from tollgate_shared import api_key_format
from tollgate_shared.testing.http import RunningServer, serving

from .conftest import bearer


class CountingUpstream:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def app(self) -> Starlette:
        async def anything(request: Request) -> JSONResponse:
            self.seen.append(f"{request.method} {request.url.path}")
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


@pytest.fixture
async def guarded(
    gateway_settings, tmp_path
) -> AsyncIterator[tuple[RunningServer, CountingUpstream]]:
    upstream = CountingUpstream()
    async with serving(upstream.app()) as upstream_server:
        routes = tmp_path / "routes.toml"
        routes.write_text(
            f"""
[[routes]]
name = "guarded"
prefix = "/api/guarded"
upstream = "{upstream_server.url}"
methods = ["GET", "POST"]

[[routes]]
name = "guarded-admin"
prefix = "/api/guarded/admin"
upstream = "{upstream_server.url}"
scopes = ["admin"]
"""
        )
        settings = gateway_settings(routes_file=routes, max_body_bytes=1024 * 1024)
        async with serving(create_gateway(settings)) as gateway:
            yield gateway, upstream


async def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Sent byte for byte: HTTP clients would normalise the paths tried here."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_bad_requests_are_4xx_problems_and_never_forwarded(http, guarded, sign_up, gateway):
    guarded_gateway, upstream = guarded
    account = await sign_up()
    good_key = account["api_key"]["key"]
    limited = await http.post(
        f"{gateway.url}/v1/keys",
        json={"name": "one a minute", "rate_limit": {"per_minute": 1}},
        headers=bearer(account["tokens"]["access_token"]),
    )
    limited_key = limited.json()["key"]
    url = f"{guarded_gateway.url}/api/guarded"
    assert (await http.get(f"{url}/warm", headers=bearer(limited_key))).status_code == 200
    assert len(upstream.seen) == 1

    unknown_key = api_key_format.generate_key("live")
    wrong_checksum = good_key[:-1] + ("A" if good_key[-1] != "A" else "B")
    cases: list[tuple[int, str, dict]] = [
        (401, "no credential", {}),
        (401, "malformed key", bearer("tg_live_short")),
        (401, "wrong checksum", bearer(wrong_checksum)),
        (401, "unknown key", bearer(unknown_key)),
        (401, "not a bearer scheme", {"Authorization": f"Basic {good_key}"}),
        (401, "garbage token", bearer("not.a.jwt")),
        (431, "huge headers", {**bearer(good_key), "X-Big": "a" * 100_000}),
        (429, "rate limited", bearer(limited_key)),
    ]
    for status, what, headers in cases:
        response = await http.get(f"{url}/x", headers=headers)
        assert response.status_code == status, what
        assert response.headers["content-type"] == "application/problem+json", what

    key = bearer(good_key)
    assert (await http.delete(f"{url}/x", headers=key)).status_code == 405
    assert (await http.get(f"{url}/admin/x", headers=key)).status_code == 403  # scope
    oversized = await http.post(f"{url}/x", headers=key, content=b"x" * (1024 * 1024 + 1))
    assert oversized.status_code == 413
    for path in (
        "/api/guarded/../../v1/keys",
        "/api/guarded/%2e%2e/x",
        "/api/guarded/..%2Fx",
        "/api/guarded/%5c..%5cx",
        "/api/guarded//x",
        "/api/guarded/x%00",
    ):
        status, body = await raw_request(
            guarded_gateway.port, f"GET {path} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {good_key}\r\n"
        )
        assert status == 400 and json.loads(body)["type"].endswith("/bad-path"), path
    status, _ = await raw_request(
        guarded_gateway.port,
        f"POST /api/guarded/x HTTP/1.1\r\nHost: gw\r\nX-API-Key: {good_key}\r\n"
        "Content-Length: lots\r\n",
    )
    assert status == 400  # refused by the HTTP server itself, before the gateway's code

    assert upstream.seen == ["GET /warm"]
