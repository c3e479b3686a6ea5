from pydantic import BaseModel, Field


class CheckoutSessionPublic(BaseModel):
    id: str = Field(description="Stripe's Checkout Session id (cs_...)")
    url: str = Field(description="Stripe's hosted page: send the customer there")
