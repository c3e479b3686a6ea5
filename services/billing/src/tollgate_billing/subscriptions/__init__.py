"""Subscriptions: each customer's current plan, its billing periods, trials and plan changes."""
