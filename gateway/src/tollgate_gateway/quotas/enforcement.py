"""Which of a request's entitlements are flagged, and whether one of them refuses it.

A request on an operator route counts against its organisation's `api_requests` entitlement
and, when the route declares another meter, that meter's entitlement too. Hard mode and
exceeded refuses; grace (either mode) and soft mode exceeded pass with a warning.
"""

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Literal

from tollgate_gateway.errors import QuotaExceededError
from tollgate_gateway.quotas.states import EntitlementState, EntitlementStates

API_REQUESTS = "api_requests"
QuotaFlag = Literal["grace", "exceeded"]


@dataclass(frozen=True, slots=True)
class QuotaVerdict:
    flagged: tuple[EntitlementState, ...]  # api_requests first, then the route's meter
    refusing: tuple[EntitlementState, ...]  # hard mode and exceeded
    worst: QuotaFlag  # for the usage event
    now: float  # when it was decided: the headers count the seconds to reset from it


def check_quotas(
    states: EntitlementStates,
    org_id: uuid.UUID,
    route_meter: str | None,
    clock: Callable[[], float] = time.time,
) -> QuotaVerdict | None:
    """None when none of the request's entitlements is in grace or exceeded (the common case:
    one dict lookup, nothing allocated, not even the clock read)."""
    by_meter = states.flagged_for(org_id)
    if by_meter is None:
        return None
    now = clock()
    flagged = [
        state
        for meter in _metered(route_meter)
        if (state := by_meter.get(meter)) is not None and state.is_current(now)
    ]
    if not flagged:
        return None
    exceeded = [state for state in flagged if state.status == "exceeded"]
    return QuotaVerdict(
        flagged=tuple(flagged),
        refusing=tuple(state for state in exceeded if state.mode == "hard"),
        worst="exceeded" if exceeded else "grace",
        now=now,
    )


def _metered(route_meter: str | None) -> tuple[str, ...]:
    if route_meter is None or route_meter == API_REQUESTS:
        return (API_REQUESTS,)
    return API_REQUESTS, route_meter


def seconds_until_reset(state: EntitlementState, now: float) -> int:
    """Whole seconds until the period ends (at least 1: the state is current)."""
    return max(1, math.ceil(state.period_end_at - now))


def format_time(state: EntitlementState) -> str:
    return state.period_end.astimezone(UTC).isoformat().replace("+00:00", "Z")


def refusal(verdict: QuotaVerdict, headers: dict[str, str]) -> QuotaExceededError:
    """The 429 problem for a request that a hard, exceeded quota refuses.

    Retry-After waits for the last of the refusing quotas to reset; the `quota` member describes
    that one (api_requests when they reset together)."""
    refusing = verdict.refusing
    last = max(refusing, key=lambda state: state.period_end_at)  # first of equals: api_requests
    detail = " ".join(
        f"The {state.meter} quota of {state.limit} for this period is used up "
        f"({state.used} used); it resets at {format_time(state)}."
        for state in refusing
    )
    return QuotaExceededError(
        detail,
        headers={"Retry-After": str(seconds_until_reset(last, verdict.now)), **headers},
        **{
            "violated-policies": [f"quota-{state.meter}" for state in refusing],
            "quota": {
                "meter": last.meter,
                "limit": last.limit,
                "used": last.used,
                "period_end": format_time(last),
            },
        },
    )
