"""Invoices: one per subscription period, from its fee, prorations and metered usage."""
