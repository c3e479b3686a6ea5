"""GET /v1/billing/info: everything an organisation sees on its billing page, in one read."""
