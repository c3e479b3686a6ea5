"""Bad input and upstream failures at the gateway: clear 4xx/5xx problems, nothing leaks."""

import asyncio
import json

from .conftest import bearer


async def test_client_identity_headers_are_replaced(http, gateway, sign_up):
    account = await sign_up()
    response = await http.get(
        f"{gateway.url}/api/demo/echo",
        headers={
            **bearer(account["api_key"]["key"]),
            "X-Tollgate-Identity": "forged",
            "X-Tollgate-Org": "someone-else",
            "X-Request-Id": "client-chosen",
            "X-Forwarded-For": "10.0.0.1",
        },
    )
    echo = response.json()
    assert echo["identity"]["org"] == account["organization"]["id"]
    assert "x-tollgate-org" not in echo["headers"]
    assert echo["headers"]["x-request-id"] == response.headers["x-request-id"] != "client-chosen"
    assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"


async def test_upstream_down_is_502(http, gateway, sign_up):
    account = await sign_up()
    response = await http.get(
        f"{gateway.url}/api/down/x", headers=bearer(account["api_key"]["key"])
    )
    assert response.status_code == 502
    assert response.json()["type"].endswith("/bad-gateway")


async def test_slow_upstream_is_504(http, gateway, sign_up):
    account = await sign_up()
    response = await http.get(
        f"{gateway.url}/api/impatient/slow?seconds=3", headers=bearer(account["api_key"]["key"])
    )
    assert response.status_code == 504
    assert response.json()["type"].endswith("/gateway-timeout")


async def test_oversized_body_is_413_declared_or_streamed(http, gateway, sign_up):
    account = await sign_up()
    headers = bearer(account["api_key"]["key"])
    declared = await http.post(
        f"{gateway.url}/api/demo/echo", headers=headers, content=b"x" * 70_000
    )
    assert declared.status_code == 413

    async def chunks():
        for _ in range(20):
            yield b"y" * 8192

    streamed = await http.post(f"{gateway.url}/api/demo/echo", headers=headers, content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["limit_bytes"] == 64 * 1024
    fits = await http.post(f"{gateway.url}/api/demo/echo", headers=headers, content=b"z" * 1000)
    assert fits.json()["body_bytes"] == 1000


async def test_oversized_body_without_credential_is_refused_before_reading(http, gateway):
    response = await http.post(f"{gateway.url}/api/demo/echo", content=b"x" * 70_000)
    assert response.status_code == 413


async def _raw_get(port: int, path: str, key: str) -> tuple[int, dict]:
    """HTTP clients normalise dot segments away; an attacker's client does not."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_path_traversal_never_reaches_upstream(gateway, sign_up):
    account = await sign_up()
    for path in (
        "/api/demo/../../v1/keys",
        "/api/demo/./echo",
        "/api/demo/%2e%2e/secret",
        "/api/demo/..%2fsecret",
        "/api/demo//echo",
        "/api/demo/echo%00",
        "/api/demo/..\\secret",
    ):
        status, problem = await _raw_get(gateway.port, path, account["api_key"]["key"])
        assert status == 400, path
        assert problem["type"].endswith("/bad-path")


async def test_unknown_route_and_internal_paths_are_404(http, gateway, sign_up):
    account = await sign_up()
    for path in ("/nowhere", "/internal/v1/keys/verify", "/v1/keysx"):
        response = await http.post(
            f"{gateway.url}{path}", headers=bearer(account["api_key"]["key"])
        )
        assert response.status_code == 404, path
        assert response.json()["type"].endswith("/route-not-found")


async def test_huge_headers_are_refused(http, gateway):
    response = await http.get(f"{gateway.url}/api/demo/hello", headers={"X-Big": "a" * 200_000})
    assert response.status_code == 431
    assert response.json()["type"].endswith("/headers-too-large")


async def test_only_what_the_client_sent_is_forwarded_and_headers_are_not_doubled(gateway, sign_up):
    account = await sign_up()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(
        f"GET /api/demo/echo HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {account['api_key']['key']}\r\nConnection: close\r\n\r\n".encode()
    )
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    header_names = [line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:]]
    assert header_names.count(b"date") == 1
    assert header_names.count(b"server") <= 1
    forwarded = json.loads(body)["headers"]
    assert "accept-encoding" not in forwarded
    assert "python-httpx" not in forwarded.get("user-agent", "")


async def test_large_answers_stream_through_intact(http, gateway, sign_up):
    account = await sign_up()
    headers = bearer(account["api_key"]["key"])
    for size in (0, 1000, 64 * 1024, 64 * 1024 + 1, 3_000_000):
        response = await http.get(f"{gateway.url}/api/demo/bytes?n={size}", headers=headers)
        assert response.status_code == 200
        assert response.content == b"x" * size, size
        assert response.headers["content-type"] == "application/octet-stream"
