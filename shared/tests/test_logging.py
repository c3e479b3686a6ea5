import json

import structlog

from tollgate_shared import api_key_format
from tollgate_shared.logging import configure_logging


def test_secrets_are_never_written(capsys):
    configure_logging(service="test", log_format="json")
    structlog.get_logger().info(
        "signup",
        password="hunter2hunter2",
        headers={"authorization": "Bearer abc", "accept": "json"},
        note=api_key_format.generate_key(),
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["password"] == "[redacted]"
    assert line["headers"] == {"authorization": "[redacted]", "accept": "json"}
    assert line["note"].endswith("[redacted]")
    assert len(line["note"]) < 30
    assert line["service"] == "test"


async def test_access_line_carries_request_id_and_org(capsys, mint_identity, identity_keys):
    import uuid

    import httpx
    from fastapi import FastAPI

    from tollgate_shared.identity import OrgIdentity, identity_verifier
    from tollgate_shared.middleware import RequestContextMiddleware

    app = FastAPI()
    app.state.identity_verifier = identity_verifier(identity_keys[1])
    app.add_middleware(RequestContextMiddleware, service="test")

    @app.get("/mine")
    async def mine(identity: OrgIdentity) -> dict[str, str]:
        structlog.get_logger().info("inside")
        return {"org": str(identity.org_id)}

    configure_logging(service="test", log_format="json")
    org_id = uuid.uuid4()
    headers = mint_identity("user", principal_id=str(uuid.uuid4()), org_id=org_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/mine", headers=headers)
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    inside = next(line for line in lines if line["event"] == "inside")
    access = next(line for line in lines if line["event"] == "request")
    for line in (inside, access):
        assert line["org_id"] == str(org_id)
        assert line["request_id"] == response.headers["x-request-id"]
