from html import escape

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from tollgate_gateway.docs.openapi import ServiceSpecs
from tollgate_shared.errors import NotFoundError, ServiceUnavailableError

router = APIRouter(include_in_schema=False)


def _specs(request: Request) -> ServiceSpecs:
    specs: ServiceSpecs = request.app.state.service_specs
    return specs


@router.get("/docs")
async def docs_index(request: Request) -> HTMLResponse:
    """Links to every service's docs, as reachable through this gateway."""
    items = "".join(
        f'<li><a href="/docs/{escape(name)}">{escape(name)}</a> '
        f'(<a href="/openapi/{escape(name)}.json">OpenAPI</a>)</li>'
        for name in _specs(request).service_urls
    )
    return HTMLResponse(
        "<!doctype html><html><head><title>Tollgate API docs</title></head><body>"
        "<h1>Tollgate API</h1><p>Every call goes through this gateway with "
        "<code>Authorization: Bearer &lt;API key or access token&gt;</code>.</p>"
        f'<ul>{items}</ul><p><a href="/openapi.json">Merged OpenAPI spec</a></p></body></html>'
    )


@router.get("/docs/{service}")
async def service_docs(service: str, request: Request) -> HTMLResponse:
    if service not in _specs(request).service_urls:
        raise NotFoundError(f"No service named {service}.")
    return get_swagger_ui_html(
        openapi_url=f"/openapi/{service}.json", title=f"Tollgate {service} API"
    )


@router.get("/openapi/{service}.json")
async def service_spec(service: str, request: Request) -> JSONResponse:
    specs = _specs(request)
    if service not in specs.service_urls:
        raise NotFoundError(f"No service named {service}.")
    spec = await specs.public_spec(service)
    if spec is None:
        raise ServiceUnavailableError(f"The {service} service did not give its spec.")
    return JSONResponse(spec)


@router.get("/openapi.json")
async def merged_spec(request: Request) -> JSONResponse:
    return JSONResponse(await _specs(request).merged_spec())
