"""Discount codes and their redemptions (migration 0005, ADR 0019)."""
