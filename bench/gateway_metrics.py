"""The gateway's own Prometheus counters, read from its /metrics text."""

from prometheus_client.parser import text_string_to_metric_families


def counter_total(metrics_text: str, family_name: str, **labels: str) -> int:
    """Sum of a counter's `_total` samples whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != family_name:
            continue
        for sample in family.samples:
            wanted = all(sample.labels.get(name) == value for name, value in labels.items())
            if sample.name.endswith("_total") and wanted:
                total += sample.value
    return int(total)
