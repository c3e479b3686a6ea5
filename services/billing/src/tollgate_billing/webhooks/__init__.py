"""Stripe's webhooks (ADR 0021): signature checked on the raw body, each event applied once."""
