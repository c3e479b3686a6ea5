"""A tiny product API standing in for the operator's own: what `make dev` routes /api/demo to.

It echoes what it received, including the identity the gateway asserted, so a newcomer can see
what their own API gets from Tollgate.
"""

import argparse
import asyncio
import os

import jwt
import uvicorn
from fastapi import FastAPI, Query, Request, Response

from tollgate_shared.identity import IDENTITY_HEADER, identity_verifier


def create_app(identity_public_key: str | None = None) -> FastAPI:
    public_key = identity_public_key or os.environ.get("TOLLGATE_IDENTITY_PUBLIC_KEY")
    verifier = identity_verifier(public_key) if public_key else None
    app = FastAPI(title="Demo product API")

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, object]:
        identity = _identity(request)
        return {"message": "Hello from the demo API", "organization_id": identity.get("org")}

    @app.get("/bytes")
    async def some_bytes(n: int = Query(1024, ge=0, le=10_000_000)) -> Response:
        """A body of n bytes, to see large answers stream through the gateway."""
        return Response(b"x" * n, media_type="application/octet-stream")

    @app.get("/slow")
    async def slow(seconds: float = 1.0) -> dict[str, float]:
        await asyncio.sleep(min(seconds, 60.0))
        return {"slept": seconds}

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @app.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(request: Request) -> dict[str, object]:
        body = await request.body()
        return {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body_bytes": len(body),
            "identity": _identity(request),
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def _identity(request: Request) -> dict[str, object]:
        token = request.headers.get(IDENTITY_HEADER)
        if not token or verifier is None:
            return {}
        try:
            return verifier.verify(token)
        except jwt.InvalidTokenError:
            return {"invalid": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-demo-upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8190)
    arguments = parser.parse_args()
    uvicorn.run(create_app(), host=arguments.host, port=arguments.port, log_level="warning")


if __name__ == "__main__":
    main()
