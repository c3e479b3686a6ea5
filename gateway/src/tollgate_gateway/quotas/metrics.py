"""Prometheus metrics of quota enforcement (defined once per process)."""

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "tollgate_gateway_quota_decisions_total",
    "Requests refused because a hard quota is exceeded, and requests passed with a quota warning",
    ["outcome"],
)
EVENTS = Counter(
    "tollgate_gateway_quota_events_total",
    "Entitlement events received: applied, stale (an equal or newer version was held) or invalid",
    ["outcome"],
)
SNAPSHOT_LOADED = Gauge(
    "tollgate_gateway_quota_snapshot_loaded",
    "1 when the last attempt to load metering's entitlement snapshot succeeded; 0 before the "
    "first success and while metering does not answer (events alone feed the cache then)",
)
FLAGGED_ENTITLEMENTS = Gauge(
    "tollgate_gateway_quota_flagged_entitlements",
    "Entitlements in grace or exceeded held by this process (ended periods until pruned)",
)
# Children resolved once, as for the rate limits.
REFUSED = DECISIONS.labels(outcome="refused")
WARNED = DECISIONS.labels(outcome="warned")
EVENT_APPLIED = EVENTS.labels(outcome="applied")
EVENT_STALE = EVENTS.labels(outcome="stale")
EVENT_INVALID = EVENTS.labels(outcome="invalid")
