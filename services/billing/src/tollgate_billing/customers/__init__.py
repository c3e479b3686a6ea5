"""Billing customers: one per organisation, created when the keys service reports it."""
