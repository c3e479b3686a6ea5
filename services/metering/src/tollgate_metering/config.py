from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tollgate_metering.entitlements.terms import DEFAULT_PLAN_ENTITLEMENTS, PlanEntitlements
from tollgate_shared.settings import Ed25519PublicKey, ServiceSettings

# The service's name: its PostgreSQL schema, its JetStream stream (METERING) and its log field.
SERVICE = "metering"


class MeteringSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_METERING_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    # How old an event's time may be when it arrives (late events, e.g. a client's retry queue).
    late_event_days: int = Field(35, ge=1, le=366)
    # How far an event's time may lie ahead of this server's clock (the sender's clock skew).
    future_tolerance_seconds: int = Field(300, ge=0, le=86400)
    # Raw events (and so their ids, which deduplicate retries) are kept this long after they
    # were received; never shorter than the late-event window, or a late retry could count twice.
    raw_retention_days: int = Field(35, ge=1)
    retention_sweep_interval_seconds: float = Field(3600.0, gt=0)
    # The durable JetStream consumer of the USAGE stream. Replicas of one deployment share it
    # (each event goes to one of them); another deployment on the same NATS needs its own name.
    usage_consumer_name: str = Field("metering-usage", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Usage events fetched and stored per transaction (then acked). At most 1,000: JetStream
    # hands a consumer at most 1,000 unacknowledged messages by default (max_ack_pending).
    usage_batch_size: int = Field(500, ge=1, le=1000)
    # Copies of the usage consumer per process, sharing the durable consumer: one stores a batch
    # while another waits on PostgreSQL. The durable consumer's max_ack_pending is raised to
    # tasks x batch size at start (ADR 0014).
    usage_consumer_tasks: int = Field(2, ge=1, le=16)

    # Each plan tier's entitlements per meter: {"free": {"api_requests": {"limit": 100000,
    # "mode": "hard", "grace_percent": 0}}, ...}. Billing will publish them with its plans.
    plan_entitlements: PlanEntitlements = Field(
        default_factory=lambda: dict(DEFAULT_PLAN_ENTITLEMENTS)
    )
    # The plan of an organisation whose plan metering was never told (or an unknown tier).
    unknown_plan: str = "free"
    # How often changed usage is compared with the entitlements (and states published).
    entitlement_check_interval_seconds: float = Field(1.0, gt=0, le=60)
    # The durable consumer of the keys service's organization events (each org's plan tier).
    organizations_consumer_name: str = Field(
        "metering-organizations", pattern=r"^[A-Za-z0-9_-]{1,64}$"
    )

    # The public half of the billing service's own identity key (ADR 0018): billing signs
    # service tokens with it to read an organisation's usage per billing period from
    # GET /internal/v1/usage, and nothing else here accepts them. Empty: billing cannot call.
    billing_identity_public_key: Ed25519PublicKey = ""

    @model_validator(mode="after")
    def _unknown_plan_exists(self) -> "MeteringSettings":
        if self.unknown_plan not in self.plan_entitlements:
            raise ValueError(
                "TOLLGATE_METERING_UNKNOWN_PLAN must be one of the plans of "
                "TOLLGATE_METERING_PLAN_ENTITLEMENTS"
            )
        return self

    @model_validator(mode="after")
    def _retention_covers_late_events(self) -> "MeteringSettings":
        if self.raw_retention_days < self.late_event_days:
            raise ValueError(
                "TOLLGATE_METERING_RAW_RETENTION_DAYS must be at least "
                "TOLLGATE_METERING_LATE_EVENT_DAYS: an event id must be remembered as long as "
                "its event may still arrive"
            )
        return self
