from tollgate_shared.errors import ConflictError, ServiceUnavailableError


class StripeDisabledError(ConflictError):
    slug, title = "stripe-disabled", "Stripe is not configured"


class StripeUnavailableError(ServiceUnavailableError):
    slug, title = "stripe-unavailable", "Stripe did not answer"
