"""Problems the gateway itself answers with (RFC 9457, same base as every service)."""

from tollgate_shared.errors import ProblemError, UnauthorizedError


class InvalidApiKeyError(UnauthorizedError):
    slug, title = "invalid-api-key", "Invalid API key"


class InvalidTokenError(UnauthorizedError):
    slug, title = "invalid-token", "Invalid access token"


class MissingScopeError(ProblemError):
    status, slug, title = 403, "insufficient-scope", "Missing scope"


class MissingRoleError(ProblemError):
    status, slug, title = 403, "insufficient-role", "Missing role"


class RouteNotFoundError(ProblemError):
    status, slug, title = 404, "route-not-found", "No such route"


class MethodNotAllowedError(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class BadPathError(ProblemError):
    status, slug, title = 400, "bad-path", "Path not allowed"


class PayloadTooLargeError(ProblemError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class HeadersTooLargeError(ProblemError):
    status, slug, title = 431, "headers-too-large", "Request headers too large"


class BadGatewayError(ProblemError):
    status, slug, title = 502, "bad-gateway", "Upstream unreachable"


class GatewayTimeoutError(ProblemError):
    status, slug, title = 504, "gateway-timeout", "Upstream timed out"


class KeysUnavailableError(ProblemError):
    status, slug, title = 503, "authentication-unavailable", "Cannot verify credentials right now"


class RateLimitedError(ProblemError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class QuotaExceededError(ProblemError):
    status, slug, title = 429, "quota-exceeded", "Quota exceeded"


class OrganizationSuspendedError(ProblemError):
    status, slug, title = 402, "organization-suspended", "Organisation suspended"
