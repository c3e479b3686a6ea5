"""RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11): structured
field lists with one member per policy, e.g.

    RateLimit-Policy: "org-hour";q=1000;w=3600, "key-minute";q=60;w=60
    RateLimit: "org-hour";r=998;t=1410, "key-minute";r=0;t=12
"""

from collections.abc import Sequence

from tollgate_gateway.rate_limits.limiter import PolicyState


def policy_field(states: Sequence[PolicyState]) -> str:
    return ", ".join(
        f'"{state.policy.name}";q={state.policy.quota};w={state.policy.window}' for state in states
    )


def limit_field(states: Sequence[PolicyState]) -> str:
    return ", ".join(
        f'"{state.policy.name}";r={state.remaining};t={state.reset_seconds}' for state in states
    )


def rate_limit_headers(states: Sequence[PolicyState]) -> dict[str, str]:
    if not states:
        return {}  # unlimited: no policy to announce
    return {"RateLimit-Policy": policy_field(states), "RateLimit": limit_field(states)}
