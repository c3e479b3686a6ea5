import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer

# Exact decimals travel as strings (ADR 0015).
DecimalString = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class InvoiceLinePublic(BaseModel):
    kind: str = Field(description="base_fee, proration, metered or tax")
    description: str
    meter: str | None = None
    quantity: DecimalString | None = Field(None, description="Metered: exactly as measured")
    included: DecimalString | None = None
    billable: DecimalString | None = None
    unit_price: DecimalString | None = Field(
        None, description="Per unit or per package, major units (single-line prices)"
    )
    price_detail: list[dict[str, Any]] | None = Field(
        None, description="Metered: each priced line (tier, quantity, unit price, amount)"
    )
    amount: int = Field(description="Minor units of the invoice's currency")


class InvoicePublic(BaseModel):
    id: uuid.UUID
    number: str
    state: str = Field(description="open, paid, void or uncollectible")
    currency: str
    plan: str
    interval: str
    period_start: datetime
    period_end: datetime = Field(description="Exclusive; earlier than planned after a change")
    usage_from: datetime | None = Field(description="Usage counted from (whole minute)")
    usage_to: datetime | None = Field(description="Usage counted until (exclusive)")
    subtotal: int = Field(description="Minor units; the sum of the lines before tax")
    total: int = Field(description="Minor units; the sum of the lines")
    lines: list[InvoiceLinePublic]
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    payment_attempts: int = Field(description="Tries to collect it so far")
    next_payment_attempt_at: datetime | None = Field(
        description="When an open invoice is tried next (automatic retry); null when none is due"
    )


class BillTo(BaseModel):
    """Whom an invoice is billed to: its customer (the organisation)."""

    name: str
    organization_id: uuid.UUID


class InvoiceSummary(BaseModel):
    id: uuid.UUID
    number: str
    state: str
    currency: str
    period_start: datetime
    period_end: datetime
    total: int
    finalized_at: datetime | None


class InvoicePage(BaseModel):
    items: list[InvoiceSummary]
    next_cursor: str | None = None


class UpcomingInvoice(BaseModel):
    """The current period's invoice so far: computed as the close job will, not stored."""

    currency: str
    plan: str
    interval: str
    period_start: datetime
    period_end: datetime = Field(description="When the period is due to end")
    usage_from: datetime
    usage_to: datetime
    subtotal: int = Field(description="Before tax")
    total: int
    lines: list[InvoiceLinePublic]
    usage: dict[str, DecimalString] = Field(
        description="Every meter's quantity so far this period, priced or not"
    )


class ReconciliationLine(BaseModel):
    meter: str
    invoiced_quantity: DecimalString
    metered_quantity: DecimalString = Field(description="Metering's figure for the period now")
    matches: bool


class Reconciliation(BaseModel):
    invoice_id: uuid.UUID
    number: str
    organization_id: uuid.UUID
    period_start: datetime
    usage_from: datetime
    usage_to: datetime
    lines: list[ReconciliationLine]
    matches: bool = Field(description="Every metered line equals metering's figure")


class PeriodCloseResult(BaseModel):
    finalized: list[uuid.UUID]
