"""Prometheus metrics shared by every process, labelled by service (defined once per process)."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "tollgate_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tollgate_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PUBLISHED = Counter(
    "tollgate_outbox_published_total", "Outbox events published to JetStream", ["service"]
)
EVENTS_CONSUMED = Counter(
    "tollgate_events_consumed_total",
    "Events handled by durable consumers, by outcome (applied, duplicate, retry, dead_letter)",
    ["consumer", "outcome"],
)
