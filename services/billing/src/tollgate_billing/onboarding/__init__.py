"""Self-serve onboarding: a signed-up organisation chooses a plan (and a discount code), adds a
payment method, starts its subscription and completes, one idempotent step at a time."""
