"""What billing made in Stripe, by our own ids (migration 0007): mapping tables, so the
customers, plans and invoices of the other slices stay as they are."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class StripeCustomer(SQLModel, table=True):
    __tablename__ = "stripe_customers"
    __table_args__ = {"schema": SCHEMA}

    customer_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.customers.id", primary_key=True)
    stripe_customer_id: str = Field(max_length=255, unique=True)
    created_at: datetime = timestamp_field(default_now=True)
    # The Checkout Session whose card is the method on file, and when Stripe made that card
    # (migration 0011): the newest card wins, whatever order the webhooks arrive in.
    checkout_session_id: str | None = Field(default=None, max_length=255)
    checkout_method_created_at: datetime | None = timestamp_field(nullable=True)


class StripeProduct(SQLModel, table=True):
    """One Stripe product per plan of the catalog."""

    __tablename__ = "stripe_products"
    __table_args__ = {"schema": SCHEMA}

    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", primary_key=True, max_length=63)
    stripe_product_id: str = Field(max_length=255, unique=True)
    created_at: datetime = timestamp_field(default_now=True)


class StripePlan(SQLModel, table=True):
    """A Stripe plan (the Plans API: a price per interval) of a plan's fee. Its amount cannot
    change in Stripe, so a new fee is a new Stripe plan and the old ones stay listed here."""

    __tablename__ = "stripe_plans"
    __table_args__ = (
        sa.UniqueConstraint("plan_key", "interval", "currency", "amount"),
        {"schema": SCHEMA},
    )

    stripe_plan_id: str = Field(primary_key=True, max_length=255)
    plan_key: str = Field(foreign_key=f"{SCHEMA}.plans.key", max_length=63)
    interval: str = Field(max_length=5)
    currency: str = Field(max_length=3)
    amount: int = Field(sa_type=sa.BigInteger)  # minor units
    created_at: datetime = timestamp_field(default_now=True)


class StripeInvoice(SQLModel, table=True):
    """Our invoice pushed to Stripe: its items, the invoice, finalized; and the state of ours
    Stripe was last made to follow (migration 0009)."""

    __tablename__ = "stripe_invoices"
    __table_args__ = {"schema": SCHEMA}

    invoice_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.invoices.id", primary_key=True)
    stripe_invoice_id: str = Field(max_length=255, unique=True)
    created_at: datetime = timestamp_field(default_now=True)
    # None: as pushed (open); "void" / "uncollectible": Stripe was told (or already said so).
    sent_state: str | None = Field(default=None, max_length=16)
    sent_at: datetime | None = timestamp_field(nullable=True)


class StripeSyncBackoff(SQLModel, table=True):
    """A customer or invoice the sync loop sent and Stripe refused (migration 0010): not tried
    again before next_try_at, so rows refused for good never fill a round. Deleted on success."""

    __tablename__ = "stripe_sync_backoffs"
    __table_args__ = {"schema": SCHEMA}

    kind: str = Field(primary_key=True, max_length=16)  # "customer" or "invoice"
    object_id: uuid.UUID = Field(primary_key=True)  # the customer's or the invoice's id
    failures: int
    last_error: str = Field(sa_type=sa.Text)
    first_failed_at: datetime = timestamp_field()
    last_failed_at: datetime = timestamp_field()
    next_try_at: datetime = timestamp_field()
