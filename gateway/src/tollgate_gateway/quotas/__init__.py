"""Quotas per billing period (metering's entitlements), enforced from a local cache fed by
metering's events and snapshot: no network call per request."""
