"""Prometheus metrics of rate limiting (defined once per process)."""

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "tollgate_gateway_rate_limit_decisions_total",
    "Rate-limit outcomes: allowed and refused requests, and leases granted locally during an "
    "outage of the shared counters",
    ["outcome"],
)
LEASES = Counter(
    "tollgate_gateway_rate_limit_leases_total",
    "Calls to the shared counters that took a lease (or found the quota used up)",
)
LOCAL_FALLBACK = Gauge(
    "tollgate_gateway_rate_limit_local_fallback",
    "1 while this replica decides rate limits alone because the shared counters are unreachable",
)
# Children resolved once: labels() per decision costs more than the decision's own bookkeeping.
ALLOWED = DECISIONS.labels(outcome="allowed")
REFUSED = DECISIONS.labels(outcome="refused")
LOCAL_LEASE = DECISIONS.labels(outcome="local_lease")
