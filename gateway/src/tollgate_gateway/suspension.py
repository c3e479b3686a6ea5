"""Organisations suspended for non-payment (ADR 0022): their calls to the operator's API are
refused with 402 until they pay; Tollgate's own /v1 routes stay open, so they can."""

from prometheus_client import Counter

from tollgate_gateway.errors import OrganizationSuspendedError

REFUSED = Counter(
    "tollgate_gateway_suspension_refusals_total",
    "Calls to the operator's API refused because the organisation is suspended for non-payment",
)

_DETAIL = (
    "Your organisation is suspended for non-payment. Pay the open invoice to restore access: "
    "list your invoices with GET /v1/billing/invoices and pay the open one with "
    "POST /v1/billing/invoices/{id}/pay. Tollgate's own /v1 endpoints stay available meanwhile."
)


def suspended_refusal() -> OrganizationSuspendedError:
    return OrganizationSuspendedError(_DETAIL)
