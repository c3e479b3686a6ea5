"""The usage event of one request: a CloudEvent whose id is the request id (= Nats-Msg-Id)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from tollgate_gateway.usage.subject import UsageSubject
from tollgate_shared.events.envelope import CloudEvent

USAGE_RECORDED = "tollgate.gateway.usage.recorded"
SOURCE = "/tollgate/gateway"


@dataclass
class RequestMeasure:
    """What the gateway saw of one request, filled in while it is served."""

    received_at: datetime
    started: float  # time.perf_counter() when the request arrived
    method: str
    status: int = 500  # until the response starts: an unanswered request is a server error
    request_bytes: int = 0  # body bytes read from the client
    response_bytes: int = 0  # body bytes handed to the server for the client
    recorded: bool = False


def usage_event(
    subject: UsageSubject, measure: RequestMeasure, *, request_id: str, latency_ms: float
) -> CloudEvent:
    identity = subject.identity
    org_id = str(identity.org_id) if identity.org_id else None
    # Built from values the gateway made itself: nothing to validate, on every request.
    return CloudEvent.model_construct(
        specversion="1.0",
        datacontenttype="application/json",
        id=request_id,
        source=SOURCE,
        type=USAGE_RECORDED,
        time=datetime.now(UTC),
        orgid=org_id,
        data={
            "request_id": request_id,
            "organization_id": org_id,
            "principal_type": identity.principal_type,
            "key_id": identity.principal_id if identity.principal_type == "key" else None,
            "user_id": identity.principal_id if identity.principal_type == "user" else None,
            "route": subject.route_name,
            "meter": subject.meter,
            "quota": subject.quota,  # grace or exceeded when flagged (refused or warned)
            "plan": identity.plan,  # the organisation's plan tier when called, for analytics
            "method": measure.method,
            "status": measure.status,
            "latency_ms": round(latency_ms, 3),
            "request_bytes": measure.request_bytes,
            "response_bytes": measure.response_bytes,
            "timestamp": measure.received_at.isoformat(),
        },
    )
