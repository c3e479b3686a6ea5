import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from tollgate_billing.db_types import utcnow
from tollgate_billing.payments.ledger import TEST_CARDS, luhn_valid


class LedgerCard(BaseModel):
    """A card for ledger mode (no payment provider): one of the sandbox test cards."""

    card_number: str = Field(
        min_length=12,
        max_length=23,
        description="Ledger mode is a sandbox: only the test cards 4242424242424242 (pays), "
        "4000000000000341 (every charge declined) and 4000000000009995 (insufficient funds)",
    )
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)

    @field_validator("card_number")
    @classmethod
    def _a_test_card(cls, value: str) -> str:
        digits = value.replace(" ", "").replace("-", "")
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            raise ValueError("a card number is 12 to 19 digits (spaces and dashes allowed)")
        if not luhn_valid(digits):
            raise ValueError("not a valid card number (its check digit is wrong)")
        if digits not in TEST_CARDS:
            raise ValueError(
                "ledger mode is a sandbox that charges no real card: use a test card, "
                "4242424242424242 (pays), 4000000000000341 (every charge declined) or "
                "4000000000009995 (insufficient funds)"
            )
        return digits

    @field_validator("exp_year")
    @classmethod
    def _not_expired(cls, value: int, info: ValidationInfo) -> int:
        month = info.data.get("exp_month")
        today = utcnow()
        if month is not None and (value, month) < (today.year, today.month):
            raise ValueError("the card has expired")
        return value


class PaymentMethodPublic(BaseModel):
    provider: str = Field(description="ledger or stripe")
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: datetime


class PaymentAttemptPublic(BaseModel):
    id: uuid.UUID
    invoice_id: uuid.UUID
    organization_id: uuid.UUID
    customer_id: uuid.UUID
    provider: str
    reference: str | None = Field(description="The provider's id of the payment; null: ledger")
    outcome: Literal["succeeded", "failed", "pending"]
    amount: int = Field(description="Minor units of currency")
    currency: str
    failure_reason: str | None
    attempt_number: int = Field(description="1 for the invoice's first attempt")
    invoice_state: str = Field(
        description="The invoice's state now: a succeeded attempt on a void (or twice on a "
        "paid) invoice is money to give back"
    )
    created_at: datetime


class PaymentAttemptPage(BaseModel):
    items: list[PaymentAttemptPublic]
    next_cursor: str | None = None


class CollectionResult(BaseModel):
    collected: list[uuid.UUID] = Field(description="Invoices a payment was tried for")
    dunned: list[uuid.UUID] = Field(description="Invoices the dunning action was applied to")
