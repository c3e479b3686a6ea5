"""The route table: built-in routes to Tollgate's services plus the operator's upstream routes.

A request goes to the route with the longest matching path prefix (whole segments only).
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

Credential = Literal["public", "key", "user", "any"]
ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RESERVED_PREFIXES = ("/v1", "/internal", "/docs", "/openapi", "/healthz", "/readyz", "/metrics")


@dataclass(frozen=True)
class Route:
    name: str
    prefix: str
    upstream: str  # base URL the remainder of the path is appended to
    credential: Credential = "any"
    # Scopes an API key needs; None means "read" for safe methods, "write" for the others.
    scopes: frozenset[str] | None = None
    roles: frozenset[str] = field(default_factory=frozenset)  # for users; empty = any member
    methods: frozenset[str] = ALL_METHODS
    strip_prefix: bool = False
    meter: str | None = None
    timeout_seconds: float | None = None  # None: the gateway's upstream timeout
    service: str | None = None  # set for built-in routes

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")

    def upstream_url(self, path: str, query: str) -> str:
        remainder = path[len(self.prefix.rstrip("/")) :] if self.strip_prefix else path
        url = self.upstream.rstrip("/") + (remainder or "/")
        return f"{url}?{query}" if query else url

    def required_scopes(self, method: str) -> frozenset[str]:
        if self.scopes is not None:
            return self.scopes
        return frozenset({"read"}) if method in SAFE_METHODS else frozenset({"write"})


# (name, prefix, service, credential, roles)
_BUILTIN = [
    ("signup", "/v1/signup", "keys", "public", ()),
    ("auth", "/v1/auth", "keys", "public", ()),
    ("invitations", "/v1/invitations", "keys", "public", ()),
    ("me", "/v1/me", "keys", "any", ()),
    ("organization", "/v1/organization", "keys", "any", ()),
    ("members", "/v1/members", "keys", "any", ()),
    ("keys", "/v1/keys", "keys", "any", ()),
    ("platform-admin", "/v1/admin", "keys", "user", ("super_admin",)),
    # Longer than /v1/admin, so these go to metering and the rest of /v1/admin to keys.
    ("metering-admin", "/v1/admin/analytics", "metering", "user", ("super_admin",)),
    ("metering-entitlements-admin", "/v1/admin/entitlements", "metering", "user", ("super_admin",)),
    ("events", "/v1/events", "metering", "any", ()),
    ("meters", "/v1/meters", "metering", "any", ()),
    ("usage", "/v1/usage", "metering", "any", ()),
    ("analytics", "/v1/analytics", "metering", "any", ()),
    ("entitlements", "/v1/entitlements", "metering", "any", ()),
    ("billing", "/v1/billing", "billing", "any", ()),
    # Longer than /v1/billing: the plan catalog's administration is the platform operator's.
    ("billing-admin", "/v1/billing/admin", "billing", "user", ("super_admin",)),
    # Stripe calls it with no credential of ours: billing verifies the Stripe-Signature header.
    ("stripe-webhooks", "/v1/billing/webhooks/stripe", "billing", "public", ()),
    ("onboarding", "/v1/onboarding", "billing", "any", ()),
]


def builtin_routes(service_urls: dict[str, str]) -> list[Route]:
    return [
        Route(
            name=name,
            prefix=prefix,
            upstream=service_urls[service],
            credential=credential,  # type: ignore[arg-type]
            roles=frozenset(roles),
            service=service,
        )
        for name, prefix, service, credential, roles in _BUILTIN
        if service in service_urls
    ]


class OperatorRoute(BaseModel):
    """One [[routes]] entry of the operator's routes file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    prefix: str = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")
    upstream: HttpUrl
    credential: Credential = "key"
    # None: read for GET/HEAD/OPTIONS, write for the rest. [] means any key may call.
    scopes: list[Literal["read", "write", "admin"]] | None = None
    methods: list[str] | None = Field(None, min_length=1)
    strip_prefix: bool = True
    meter: str | None = Field("api_requests", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    timeout_seconds: float | None = Field(None, gt=0, le=3600)

    @field_validator("prefix")
    @classmethod
    def _not_reserved(cls, prefix: str) -> str:
        if ".." in prefix.split("/") or "//" in prefix:
            raise ValueError("prefix must be a clean path")
        if prefix == "/":
            raise ValueError("a route cannot take the whole gateway")
        for reserved in RESERVED_PREFIXES:
            if prefix == reserved or prefix.startswith((reserved + "/", reserved + ".")):
                raise ValueError(f"prefix {prefix} is reserved for Tollgate itself")
        return prefix.rstrip("/")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str] | None) -> list[str] | None:
        if methods is None:
            return None
        upper = [method.upper() for method in methods]
        if unknown := set(upper) - ALL_METHODS:
            raise ValueError(f"unknown methods: {sorted(unknown)}")
        return upper

    def to_route(self) -> Route:
        upstream = str(self.upstream)
        if urlsplit(upstream).query:
            raise ValueError("upstream must not carry a query string")
        return Route(
            name=self.name,
            prefix=self.prefix,
            upstream=upstream,
            credential=self.credential,
            scopes=frozenset(self.scopes) if self.scopes is not None else None,
            methods=frozenset(self.methods) if self.methods is not None else ALL_METHODS,
            strip_prefix=self.strip_prefix,
            meter=self.meter,
            timeout_seconds=self.timeout_seconds,
        )


class RoutesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[OperatorRoute] = Field(default_factory=list)


def load_operator_routes(path: Path | None) -> list[Route]:
    if path is None:
        return []
    with path.open("rb") as file:
        parsed = RoutesFile.model_validate(tomllib.load(file))
    names = [route.name for route in parsed.routes]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: route names must be unique")
    return [route.to_route() for route in parsed.routes]


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        prefixes = [route.prefix for route in routes]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("two routes share a prefix")
        # Longest prefix first, so the most specific route wins.
        self.routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            if route.matches(path):
                return route
        return None
