"""Calls to Stripe (ADR 0021): customers, the catalog, invoices, Checkout, collection."""
