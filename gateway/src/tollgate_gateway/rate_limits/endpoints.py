"""GET /v1/limits: the caller's policies and what remains of each, spending nothing."""

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from tollgate_gateway.forwarding import Gateway
from tollgate_gateway.rate_limits.headers import rate_limit_headers
from tollgate_gateway.rate_limits.policies import WINDOW_NAMES
from tollgate_shared.errors import ForbiddenError
from tollgate_shared.identity import bind_identity_to_logs

router = APIRouter(include_in_schema=False)


class PolicyView(BaseModel):
    name: str
    scope: Literal["organization", "key"]
    window: str
    window_seconds: int
    quota: int
    remaining: int
    reset_seconds: int


class LimitsView(BaseModel):
    plan: str
    policies: list[PolicyView]


@router.get("/v1/limits")
async def read_limits(request: Request, response: Response) -> LimitsView:
    gateway: Gateway = request.app.state.gateway
    identity, key, _suspended = await gateway.identify(request)
    bind_identity_to_logs(identity)
    if key is not None:
        policies = gateway.policies.key_policies(key)
    elif identity.org_id is not None:
        policies = gateway.policies.org_policies(identity.org_id, identity.plan)
    else:
        raise ForbiddenError("Limits belong to an organisation; this account has none.")
    states = await gateway.limiter.peek(policies)
    view = LimitsView(
        plan=identity.plan or gateway.policies.unknown_plan,
        policies=[
            PolicyView(
                name=state.policy.name,
                scope="organization" if state.policy.scope == "org" else "key",
                window=WINDOW_NAMES[state.policy.window],
                window_seconds=state.policy.window,
                quota=state.policy.quota,
                remaining=state.remaining,
                reset_seconds=state.reset_seconds,
            )
            for state in states
        ],
    )
    response.headers.update(rate_limit_headers(states))
    return view
