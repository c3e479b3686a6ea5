"""The one way billing talks to Stripe: the SDK's StripeClient with our time limit and network
retries, and Idempotency-Keys derived from our own ids."""

from typing import Any

import stripe

from tollgate_billing.config import BillingSettings

# Stripe's metadata keys on the objects billing makes: they lead back to our rows.
CUSTOMER_METADATA = "tollgate_customer_id"
ORG_METADATA = "tollgate_org_id"
INVOICE_METADATA = "tollgate_invoice_id"
LINE_METADATA = "tollgate_invoice_line_id"
PLAN_METADATA = "tollgate_plan"


def stripe_client(settings: BillingSettings) -> stripe.StripeClient:
    """A client for the configured account (settings.stripe_enabled must be true). The SDK
    retries timeouts, connection errors, 409 and 5xx with the request's Idempotency-Key, which
    every mutating call sets, so Stripe replays the first result instead of acting twice."""
    assert settings.stripe_secret_key is not None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base.rstrip("/")},
        max_network_retries=settings.stripe_max_network_retries,
        http_client=stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds),
    )


def idempotent(*parts: object) -> Any:
    """Request options with the Idempotency-Key "tollgate-<parts>", e.g. tollgate-customer-<id>.
    Stripe keeps a key 24 hours: long enough for any retry of ours, and every object we make is
    also recorded on our side, so a later run finds it there instead of asking again."""
    return {"idempotency_key": "-".join(["tollgate", *(str(part) for part in parts)])}


def field_of(obj: stripe.StripeObject, name: str) -> Any:
    """A field that this API version (or localstripe) may not have: None when absent."""
    return obj[name] if name in obj else None  # noqa: SIM401 (a StripeObject has no .get)


def metadata_of(obj: stripe.StripeObject) -> dict[str, str]:
    """The object's metadata as a dict (a StripeObject is not one)."""
    metadata = field_of(obj, "metadata")
    return dict(metadata.to_dict()) if metadata else {}


def already_exists(error: stripe.StripeError) -> bool:
    """Stripe refuses an object whose id (our product and plan ids) is taken: 400 with code
    resource_already_exists (localstripe answers 409)."""
    return error.code == "resource_already_exists" or error.http_status == 409
