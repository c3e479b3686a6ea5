"""Prometheus metrics of usage emission (defined once per process)."""

from prometheus_client import Counter, Gauge

SPOOLED = Counter(
    "tollgate_gateway_usage_events_spooled_total", "Usage events written to the local spool"
)
PUBLISHED = Counter(
    "tollgate_gateway_usage_events_published_total",
    "Usage events acknowledged by JetStream; outcome=duplicate: a replayed event it already had",
    ["outcome"],
)
DROPPED = Counter(
    "tollgate_gateway_usage_events_dropped_total",
    "Usage events lost, by reason: spool_full, write_error, unreadable, error",
    ["reason"],
)
PUBLISH_FAILURES = Counter(
    "tollgate_gateway_usage_publish_failures_total",
    "Batches JetStream did not acknowledge (they stay in the spool and are published again)",
)
SPOOL_BYTES = Gauge("tollgate_gateway_usage_spool_bytes", "Bytes the usage spool takes on disk")
SPOOL_LAG_BYTES = Gauge(
    "tollgate_gateway_usage_spool_lag_bytes",
    "Bytes of spooled usage events not yet acknowledged by JetStream",
)
