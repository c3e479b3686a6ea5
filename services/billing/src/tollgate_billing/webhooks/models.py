from datetime import datetime

from sqlmodel import Field, SQLModel

from tollgate_billing.db_types import SCHEMA, timestamp_field


class StripeEvent(SQLModel, table=True):
    """A Stripe event billing received (migration 0007), stored in the transaction of its
    effect: the insert that finds the id taken is a duplicate and does nothing."""

    __tablename__ = "stripe_events"
    __table_args__ = {"schema": SCHEMA}

    event_id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    # applied: it changed something here; ignored: a type or an object that is not ours;
    # superseded: ours, but a newer one was applied (an older Checkout Session's card).
    outcome: str = Field(max_length=16)
    received_at: datetime = timestamp_field()
    processed_at: datetime = timestamp_field()
