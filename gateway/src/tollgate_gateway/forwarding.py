"""The gateway's one job per request: route, authenticate, authorize, suspension, quotas, limit,
forward."""

import uuid
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from tollgate_gateway.authentication.authenticator import Authenticator, Caller, credential_from
from tollgate_gateway.authentication.invalidation import KeyInvalidation
from tollgate_gateway.authentication.key_cache import VerifiedKey
from tollgate_gateway.authentication.key_usage import KeyUsageTracker
from tollgate_gateway.authorization import authorize
from tollgate_gateway.config import GatewaySettings
from tollgate_gateway.errors import MethodNotAllowedError, RateLimitedError, RouteNotFoundError
from tollgate_gateway.identity_tokens import IdentityTokens
from tollgate_gateway.quotas.enforcement import check_quotas, refusal
from tollgate_gateway.quotas.headers import QUOTA_WARNING, quota_warning_field
from tollgate_gateway.quotas.metrics import REFUSED as QUOTA_REFUSED
from tollgate_gateway.quotas.metrics import WARNED as QUOTA_WARNED
from tollgate_gateway.quotas.states import EntitlementStates
from tollgate_gateway.rate_limits.headers import rate_limit_headers
from tollgate_gateway.rate_limits.limiter import RateLimiter
from tollgate_gateway.rate_limits.policies import PolicyBook
from tollgate_gateway.routing.proxy import (
    UpstreamProxy,
    check_declared_length,
    check_header_size,
    check_path,
    forwarded_headers,
    read_body,
)
from tollgate_gateway.routing.table import Route, RouteTable
from tollgate_gateway.suspension import REFUSED as SUSPENSION_REFUSED
from tollgate_gateway.suspension import suspended_refusal
from tollgate_gateway.usage.subject import UsageSubject, attach_subject
from tollgate_shared.errors import UnauthorizedError
from tollgate_shared.identity import (
    IDENTITY_HEADER,
    Identity,
    bind_identity_to_logs,
)
from tollgate_shared.middleware import ROUTE_LABEL

ANONYMOUS = Identity(principal_type="anonymous")
RATE_LIMIT_FIELDS = frozenset({b"ratelimit", b"ratelimit-policy"})
QUOTA_WARNING_FIELD = QUOTA_WARNING.lower().encode()


@dataclass
class Gateway:
    settings: GatewaySettings
    routes: RouteTable
    authenticator: Authenticator
    identity_tokens: IdentityTokens
    proxy: UpstreamProxy
    key_usage: KeyUsageTracker
    key_invalidation: KeyInvalidation
    limiter: RateLimiter
    policies: PolicyBook
    quotas: EntitlementStates

    async def handle(self, request: Request) -> Response:
        check_header_size(request.scope["headers"], self.settings.max_header_bytes)
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        check_path(raw_path)
        # Routing and forwarding both use the raw path, so what is checked is what is sent.
        route = self.routes.match(raw_path)
        if route is None:
            raise RouteNotFoundError(f"No route serves {request.url.path}.")
        request.scope[ROUTE_LABEL] = route.name
        if request.method not in route.methods:
            raise MethodNotAllowedError(
                f"{request.method} is not allowed here.",
                headers={"Allow": ", ".join(sorted(route.methods))},
            )
        check_declared_length(request, self.settings.max_body_bytes)
        request_id: str = request.state.request_id
        identity = ANONYMOUS
        limit_headers: dict[str, str] = {}
        quota_warning: str | None = None
        if route.credential != "public":
            identity, key, suspended = await self.identify(request)
            # From here on the request is usage, whatever its outcome (refusals included).
            subject = UsageSubject.of(identity, route)
            attach_subject(request.scope, subject)
            authorize(route, identity, request.method)
            if key is not None:
                self.key_usage.record(key.key_id)
            # Suspension and quotas sell the operator's API; Tollgate's own routes (usage,
            # invoices, upgrades) stay open, so an org can pay. Both are checked before the
            # limiter, so a refused request spends no token.
            if route.service is None and suspended:
                SUSPENSION_REFUSED.inc()
                raise suspended_refusal()
            if route.service is None and identity.org_id is not None:
                quota_warning = self.enforce_quotas(request, subject, identity.org_id, route)
            if key is not None:
                limit_headers = await self.enforce_limits(key)
        request.state.identity = identity
        bind_identity_to_logs(identity)
        body = await read_body(request, self.settings.max_body_bytes)
        token = self.identity_tokens.token_for(identity)
        headers = forwarded_headers(request, {IDENTITY_HEADER: token, "x-request-id": request_id})
        response = await self.proxy.forward(
            method=request.method,
            url=route.upstream_url(raw_path, request.scope["query_string"].decode("latin-1")),
            headers=headers,
            body=body,
            timeout_seconds=route.timeout_seconds,
        )
        if limit_headers:  # the gateway's fields replace any the upstream sent
            response.raw_headers = [
                header for header in response.raw_headers if header[0] not in RATE_LIMIT_FIELDS
            ] + [(name.lower().encode(), value.encode()) for name, value in limit_headers.items()]
        if quota_warning is not None:
            response.raw_headers = [
                header for header in response.raw_headers if header[0] != QUOTA_WARNING_FIELD
            ] + [(QUOTA_WARNING_FIELD, quota_warning.encode())]
        if route.service == "keys":
            self.key_invalidation.after_response(
                method=request.method, path=raw_path, status=response.status_code
            )
        return response

    async def identify(self, request: Request) -> Caller:
        credential = credential_from(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if credential is None:
            raise UnauthorizedError("Send an API key or access token as a Bearer credential.")
        return await self.authenticator.authenticate(credential)

    def enforce_quotas(
        self, request: Request, subject: UsageSubject, org_id: uuid.UUID, route: Route
    ) -> str | None:
        """The Tollgate-Quota-Warning value when an entitlement of the request is in grace or
        exceeded (soft); 429 when one is exceeded in hard mode; None for nothing to say."""
        verdict = check_quotas(self.quotas, org_id, route.meter)
        if verdict is None:
            return None
        attach_subject(request.scope, replace(subject, quota=verdict.worst))
        warning = quota_warning_field(verdict.flagged, verdict.now)
        if verdict.refusing:
            QUOTA_REFUSED.inc()
            raise refusal(verdict, headers={QUOTA_WARNING: warning})
        QUOTA_WARNED.inc()
        return warning

    async def enforce_limits(self, key: VerifiedKey) -> dict[str, str]:
        """Spend one request of every policy of the key, or refuse with 429."""
        decision = await self.limiter.check(self.policies.key_policies(key))
        headers = rate_limit_headers(decision.states)
        if not decision.allowed:
            names = [policy.name for policy in decision.violated]
            raise RateLimitedError(
                f"Rate limit reached ({', '.join(names)}); retry after the window resets.",
                headers={"Retry-After": str(decision.retry_after_seconds), **headers},
                **{"violated-policies": names},
            )
        return headers
