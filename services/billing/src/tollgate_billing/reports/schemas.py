import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field


class PlanMrr(BaseModel):
    plan: str
    interval: str
    status: str
    subscriptions: int
    mrr: int = Field(description="Minor units per month; 0 for statuses that do not count")


class CurrencyMrr(BaseModel):
    currency: str
    mrr: int = Field(description="Minor units per month, yearly fees as a twelfth")
    paying_subscriptions: int


class MrrReport(BaseModel):
    as_of: datetime
    counted_statuses: list[str] = Field(description="Subscriptions whose fee counts in MRR")
    currencies: list[CurrencyMrr]
    by_plan: list[PlanMrr]


class MonthRevenue(BaseModel):
    month: date = Field(description="The first day of the month (UTC)")
    currency: str
    invoiced: int = Field(description="Minor units: totals of invoices finalized that month")
    invoices: int
    collected: int = Field(description="Minor units: totals of invoices paid that month")
    paid_invoices: int


class RevenueReport(BaseModel):
    months: list[MonthRevenue] = Field(description="Oldest first; months with nothing omitted")


class InvoiceStateTotal(BaseModel):
    state: str
    currency: str
    invoices: int
    total: int = Field(description="Minor units")


class InvoiceStateReport(BaseModel):
    states: list[InvoiceStateTotal]


class AdminInvoiceSummary(BaseModel):
    id: uuid.UUID
    number: str
    organization_id: uuid.UUID
    state: str
    currency: str
    total: int
    period_start: datetime
    period_end: datetime
    finalized_at: datetime


class AdminInvoicePage(BaseModel):
    items: list[AdminInvoiceSummary]
    next_cursor: str | None = None


class AdminCustomer(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    plan: str
    interval: str
    status: str
    current_period_end: datetime
    created_at: datetime


class AdminCustomerPage(BaseModel):
    items: list[AdminCustomer]
    next_cursor: str | None = None
