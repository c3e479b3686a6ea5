"""Payments: the way a customer pays, collecting finalized invoices, and dunning when it fails."""
