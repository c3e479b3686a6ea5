import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from tollgate_shared.errors import NotFoundError, install_problem_handlers
from tollgate_shared.middleware import RequestContextMiddleware


class Thing(BaseModel):
    name: str
    size: int


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="test")

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        return thing

    @app.get("/things/{thing_id}")
    async def get(thing_id: int) -> None:
        raise NotFoundError(f"No thing {thing_id}.")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


async def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(), raise_app_exceptions=False), base_url="http://t"
    )


async def test_validation_errors_are_problems_listing_each_field():
    async with await _client() as client:
        response = await client.post("/things", json={"size": "big"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://tollgate.dev/problems/validation-error"
    assert {tuple(e["loc"]) for e in problem["errors"]} == {("body", "name"), ("body", "size")}
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_malformed_json_is_a_problem_not_a_500():
    async with await _client() as client:
        response = await client.post(
            "/things", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": ["body"],
            "message": "The body is not valid JSON (error at character 1).",
            "type": "json_invalid",
        }
    ]


async def test_typed_errors_and_unknown_routes_and_bugs():
    async with await _client() as client:
        missing = await client.get("/things/7")
        no_route = await client.get("/nowhere")
        wrong_method = await client.delete("/things")
        bug = await client.get("/boom")
    assert missing.status_code == 404 and missing.json()["detail"] == "No thing 7."
    assert missing.json()["instance"] == "/things/7"
    assert no_route.status_code == 404 and no_route.json()["type"].endswith("/not-found")
    assert wrong_method.status_code == 405
    assert bug.status_code == 500
    assert "a bug" not in bug.text
    assert bug.json()["request_id"] == bug.headers["x-request-id"]
