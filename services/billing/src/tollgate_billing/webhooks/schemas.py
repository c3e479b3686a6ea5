from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NO_NUL = r"^[^\x00]*$"


class StripeEventObject(BaseModel):
    """What billing reads of a Stripe event: its id, type and object (re-read from Stripe when
    it matters, so an old snapshot delivered late never wins)."""

    model_config = ConfigDict(extra="ignore")

    # Stored as text: PostgreSQL refuses a NUL (that was a 500), so such an event is invalid.
    id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    type: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    data: dict[str, Any]

    @property
    def object(self) -> dict[str, Any]:
        value = self.data.get("object")
        return value if isinstance(value, dict) else {}


class WebhookReceipt(BaseModel):
    received: Literal[True] = True
    event_id: str
    # applied: it changed something; ignored: not a type or an object of ours; superseded:
    # ours, but a newer one of its kind was applied (a Checkout Session completed before the
    # one whose card is on file); duplicate: this event id was processed before (Stripe
    # delivers at least once).
    outcome: Literal["applied", "ignored", "superseded", "duplicate"]
