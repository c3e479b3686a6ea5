import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from tollgate_billing.catalog.schemas import PlanPublic
from tollgate_billing.discounts.schemas import CustomerDiscount
from tollgate_billing.invoices.schemas import DecimalString, UpcomingInvoice
from tollgate_billing.payments.schemas import PaymentMethodPublic
from tollgate_billing.subscriptions.schemas import SubscriptionPublic


class BillingInfo(BaseModel):
    organization_id: uuid.UUID
    plan: PlanPublic
    subscription: SubscriptionPublic
    payment_method: PaymentMethodPublic | None = Field(description="null: none on file")
    discount: CustomerDiscount | None = Field(description="The running discount, if any")
    usage: dict[str, DecimalString] | None = Field(
        description="Every meter's quantity this period so far; null when metering is unreachable"
    )
    upcoming_invoice: UpcomingInvoice | None = Field(
        description="The projected invoice of this period; null when metering is unreachable"
    )
    unavailable: list[str] = Field(
        description='Parts that could not be read now, e.g. ["usage"]: retry later'
    )
    as_of: datetime
