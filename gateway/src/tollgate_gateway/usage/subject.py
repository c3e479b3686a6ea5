"""Who used which route: attached to a request once it passed authentication.

Only requests carrying a subject produce a usage event, so public routes and requests refused
before or at authentication never do, while those refused afterwards (403 scope, 413, 502...) do.
"""

from dataclasses import dataclass
from typing import Literal

from starlette.types import Scope

from tollgate_gateway.routing.table import Route
from tollgate_shared.identity import Identity

_STATE_KEY = "usage_subject"


@dataclass(frozen=True)
class UsageSubject:
    identity: Identity
    route_name: str
    # The route's meter; None for the built-in routes to Tollgate's own services.
    meter: str | None
    # The worst status of the request's entitlements when one is in grace or exceeded.
    quota: Literal["grace", "exceeded"] | None = None

    @classmethod
    def of(cls, identity: Identity, route: Route) -> "UsageSubject":
        return cls(identity=identity, route_name=route.name, meter=route.meter)


def attach_subject(scope: Scope, subject: UsageSubject) -> None:
    scope.setdefault("state", {})[_STATE_KEY] = subject


def attached_subject(scope: Scope) -> UsageSubject | None:
    subject: UsageSubject | None = scope.get("state", {}).get(_STATE_KEY)
    return subject
