"""RFC 9457 problem details: one base error, typed subclasses, one set of handlers per app."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://tollgate.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error the client should see as problem+json; subclasses set status, slug and title."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequestError(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class UnauthorizedError(ProblemError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extensions)


class ForbiddenError(ProblemError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFoundError(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class ValidationProblem(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid request"


class ServiceUnavailableError(ProblemError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem_response(
    request: Request,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_from(request: Request, error: ProblemError) -> JSONResponse:
    return problem_response(
        request,
        status=error.status,
        type_=error.type,
        title=error.title,
        detail=error.detail,
        headers=error.headers,
        **error.extensions,
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_from(request, exc)


def _field_error(error: dict[str, Any]) -> dict[str, Any]:
    if error.get("type") == "json_invalid":
        # pydantic puts the character offset where a field name would be; say it in words.
        offset = error.get("loc", ("body", "?"))[-1]
        return {
            "loc": ["body"],
            "message": f"The body is not valid JSON (error at character {offset}).",
            "type": "json_invalid",
        }
    return {
        "loc": [str(part) for part in error.get("loc", ())],
        "message": error.get("msg", "invalid"),
        "type": error.get("type", "invalid"),
    }


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    return problem_response(
        request,
        status=422,
        type_=PROBLEM_BASE + ValidationProblem.slug,
        title=ValidationProblem.title,
        detail=f"{len(errors)} invalid field(s) in the request",
        errors=errors,
    )


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    title = slug.replace("-", " ").capitalize()
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        request,
        status=exc.status_code,
        type_=PROBLEM_BASE + slug,
        title=title,
        detail=detail,
        headers=dict(exc.headers or {}),
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Problems for our errors, validation and routing; unexpected errors are answered by
    RequestContextMiddleware so the 500 carries the request id too."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
