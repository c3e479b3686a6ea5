from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, StringConstraints, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tollgate_billing.catalog.defaults import DEFAULT_CATALOG
from tollgate_billing.catalog.schemas import PlanCreate
from tollgate_billing.decimal_json import loads_with_decimals
from tollgate_shared.settings import Ed25519PrivateKey, ServiceSettings

# The service's name: its PostgreSQL schema, its JetStream stream (BILLING) and its log field.
SERVICE = "billing"


def _decode_catalog(value: Any) -> Any:
    """The environment's JSON, with prices read as Decimal (never through a float)."""
    return loads_with_decimals(value) if isinstance(value, str | bytes) else value


Catalog = Annotated[list[PlanCreate], NoDecode, BeforeValidator(_decode_catalog)]
# An empty variable is the same as none (a compose file's `KEY=` leaves Stripe off).
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(lambda value: value or None)]


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_BILLING_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    # Plans created at start when no plan with their key exists yet: an operator's later edits
    # (through the admin API) are never overwritten. A JSON list of plans (docs/api.md).
    catalog: Catalog = Field(default_factory=lambda: list(DEFAULT_CATALOG))
    # Who issues the invoices: the name at the top of every invoice PDF (the operator's company).
    invoice_issuer: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = "Tollgate"
    # The plan every new organisation's billing customer starts on.
    default_plan: str = "free"
    # The durable consumer of the keys service's organization events (one customer per org).
    organizations_consumer_name: str = Field(
        "billing-organizations", pattern=r"^[A-Za-z0-9_-]{1,64}$"
    )

    # How often the period roller looks for ended periods and trials (every replica runs one).
    period_roll_interval_seconds: float = Field(30.0, gt=0, le=3600)

    # A period's invoice is finalized this long after the period ended, so usage events that
    # arrive late (the gateway's spool, a client's retry queue) are still on it. Events about
    # the period that metering stores later than this are on no invoice (ADR 0018).
    usage_grace_seconds: int = Field(3600, ge=0, le=7 * 86400)
    # How often the period close job looks for periods to invoice (every replica runs one).
    period_close_interval_seconds: float = Field(60.0, gt=0, le=3600)

    # Dunning (ADR 0020): a failed invoice is retried these many days after its first failure
    # (a JSON list, increasing, each within the grace period) ...
    dunning_retry_days: list[int] = Field(default_factory=lambda: [1, 3, 5], max_length=20)
    # ... and still unpaid this many days after its first failure, the dunning action applies:
    # "downgrade" (the default plan now, the invoice uncollectible) or "suspend" (the org's
    # calls to the operator's API refused until it pays).
    dunning_grace_days: int = Field(7, ge=1, le=365)
    dunning_action: Literal["downgrade", "suspend"] = "downgrade"
    # How often the collection job looks for invoices to collect or dun (every replica runs one).
    payment_collection_interval_seconds: float = Field(60.0, gt=0, le=3600)

    # Metering's base URL: invoices read each period's usage from its GET /internal/v1/usage.
    metering_url: str = Field(pattern=r"^https?://[^\s]+$")
    # Billing's own Ed25519 key (ADR 0018): it signs the service tokens of its calls to
    # metering (issuer tollgate-billing, audience tollgate-metering), which metering verifies
    # with the public half (TOLLGATE_METERING_BILLING_IDENTITY_PUBLIC_KEY). No other service
    # accepts them, so billing still cannot act as the gateway or as a user.
    identity_private_key: Ed25519PrivateKey

    # Stripe (ADR 0021): off unless the secret key is set; then customers, the catalog and
    # invoices are pushed to Stripe, Stripe collects, and its webhooks report the outcome.
    stripe_secret_key: OptionalSecret = None
    # The signing secret of the webhook endpoint (whsec_...): required with the key.
    stripe_webhook_secret: OptionalSecret = None
    # Where the SDK sends its calls; tests point it at localstripe.
    stripe_api_base: str = Field("https://api.stripe.com", pattern=r"^https?://[^\s/]+(:\d+)?/?$")
    # A webhook whose signed timestamp is older than this is refused (replays).
    stripe_webhook_tolerance_seconds: int = Field(300, ge=1, le=3600)
    # Where Stripe Checkout sends the customer back after adding a payment method (or not).
    stripe_checkout_success_url: str = Field(
        "http://localhost:8080/billing/payment-method?checkout=success",
        pattern=r"^https?://[^\s]+$",
    )
    stripe_checkout_cancel_url: str = Field(
        "http://localhost:8080/billing/payment-method?checkout=canceled",
        pattern=r"^https?://[^\s]+$",
    )
    # How often every replica gives Stripe customers to customers that have none yet.
    stripe_sync_interval_seconds: float = Field(30.0, gt=0, le=3600)
    # One Stripe call's time limit, and how often the SDK retries a network failure (with the
    # same Idempotency-Key, so a retry never makes a second object).
    stripe_timeout_seconds: float = Field(20.0, gt=0, le=120)
    stripe_max_network_retries: int = Field(2, ge=0, le=10)

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe_secret_key is not None

    def secret_values(self) -> dict[str, str]:
        stripe = {
            "TOLLGATE_BILLING_STRIPE_SECRET_KEY": self.stripe_secret_key,
            "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
        }
        return {
            **super().secret_values(),
            "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY": self.identity_private_key,
            # Only when Stripe is on: then both must be set, and real outside dev mode.
            **{
                name: "" if value is None else value.get_secret_value()
                for name, value in stripe.items()
                if self.stripe_enabled
            },
        }

    @model_validator(mode="after")
    def _stripe_is_consistent(self) -> "BillingSettings":
        if self.stripe_secret_key is None:
            return self
        if not self.stripe_secret_key.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError(
                "TOLLGATE_BILLING_STRIPE_SECRET_KEY must be a Stripe secret or restricted key "
                "(sk_... or rk_...)"
            )
        if self.stripe_webhook_secret is None:
            raise ValueError(
                "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET must be set when "
                "TOLLGATE_BILLING_STRIPE_SECRET_KEY is (the endpoint's signing secret, whsec_...)"
            )
        return self

    @model_validator(mode="after")
    def _catalog_is_consistent(self) -> "BillingSettings":
        keys = [plan.key for plan in self.catalog]
        if len(set(keys)) != len(keys):
            raise ValueError("TOLLGATE_BILLING_CATALOG names a plan key twice")
        if self.default_plan not in keys:
            raise ValueError(
                "TOLLGATE_BILLING_DEFAULT_PLAN must be one of the plans of TOLLGATE_BILLING_CATALOG"
            )
        return self

    @model_validator(mode="after")
    def _dunning_schedule_is_consistent(self) -> "BillingSettings":
        days = self.dunning_retry_days
        if any(day < 1 for day in days) or days != sorted(set(days)):
            raise ValueError(
                "TOLLGATE_BILLING_DUNNING_RETRY_DAYS must be increasing whole days, each at "
                "least 1 (days after the first failure), e.g. [1, 3, 5]"
            )
        if days and days[-1] >= self.dunning_grace_days:
            raise ValueError(
                "TOLLGATE_BILLING_DUNNING_RETRY_DAYS must all be before "
                f"TOLLGATE_BILLING_DUNNING_GRACE_DAYS ({self.dunning_grace_days}): a retry after "
                "the dunning action would never run"
            )
        return self
