"""The gateway's API docs: each service's public spec, and one merged spec for all of them."""

import time
from typing import Any

import httpx
import structlog

from tollgate_gateway.routing.table import Route, RouteTable

logger = structlog.get_logger(__name__)
CACHE_SECONDS = 60.0
BEARER = {"bearer": {"type": "http", "scheme": "bearer", "description": "API key or access token"}}


class ServiceSpecs:
    """Fetches /openapi.json from each service, keeps only what the gateway routes publicly."""

    def __init__(self, *, service_urls: dict[str, str], routes: RouteTable) -> None:
        self.service_urls, self.routes = service_urls, routes
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._http = httpx.AsyncClient(timeout=5.0)

    async def public_spec(self, service: str) -> dict[str, Any] | None:
        cached = self._cache.get(service)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            response = await self._http.get(self.service_urls[service] + "/openapi.json")
            response.raise_for_status()
        except httpx.HTTPError as error:
            logger.warning("service spec unavailable", service=service, error=repr(error))
            return cached[1] if cached else None
        spec = self._only_routed_paths(service, response.json())
        self._cache[service] = (time.monotonic(), spec)
        return spec

    def _only_routed_paths(self, service: str, spec: dict[str, Any]) -> dict[str, Any]:
        def routed(path: str) -> Route | None:
            route = self.routes.match(path)
            return route if route is not None and route.service == service else None

        spec["paths"] = {path: item for path, item in spec.get("paths", {}).items() if routed(path)}
        spec.setdefault("components", {}).setdefault("securitySchemes", {}).update(BEARER)
        for path, item in spec["paths"].items():
            route = routed(path)
            for operation in item.values():
                if isinstance(operation, dict) and route and route.credential != "public":
                    operation["security"] = [{"bearer": []}]
        return spec

    async def merged_spec(self) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "Tollgate API", "version": "0.1.0"},
            "paths": {},
            "components": {"schemas": {}, "securitySchemes": dict(BEARER)},
        }
        for service in self.service_urls:
            spec = await self.public_spec(service)
            if spec is None:
                continue
            merged["paths"].update(spec["paths"])
            for name, schema in spec.get("components", {}).get("schemas", {}).items():
                existing = merged["components"]["schemas"].setdefault(name, schema)
                if existing != schema:
                    logger.warning("schema name clash in merged spec", schema=name)
        return merged

    async def close(self) -> None:
        await self._http.aclose()
