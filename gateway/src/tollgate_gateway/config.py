from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tollgate_gateway.rate_limits.policies import DEFAULT_PLANS, Limits
from tollgate_shared.settings import CommonSettings, Ed25519PrivateKey, Ed25519PublicKey


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_GATEWAY_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    # Signs the identity token forwarded to services (they hold the public half).
    identity_private_key: Ed25519PrivateKey = ""
    # Verifies user access tokens minted by the keys service.
    user_token_public_key: Ed25519PublicKey = ""
    identity_ttl_seconds: int = Field(60, ge=5, le=3600)

    # Processes `tollgate-gateway serve` starts on its port (read by the command, not the app).
    workers: int = Field(1, ge=1, le=64)

    keys_url: str = "http://127.0.0.1:8101"
    metering_url: str = "http://127.0.0.1:8103"
    billing_url: str = "http://127.0.0.1:8102"
    routes_file: Path | None = Field(None, description="Operator routes (TOML)")

    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    upstream_connect_timeout_seconds: float = Field(5.0, gt=0)
    upstream_timeout_seconds: float = Field(30.0, gt=0)
    keys_timeout_seconds: float = Field(2.0, gt=0)

    # A cached key is re-checked with the keys service after this long (revocations arrive
    # through NATS at once; this bounds staleness if an event was missed).
    key_cache_refresh_seconds: float = Field(60.0, gt=0)
    key_cache_negative_seconds: float = Field(5.0, ge=0)
    key_cache_max_entries: int = Field(100_000, ge=100)
    key_usage_flush_seconds: float = Field(5.0, gt=0)

    # Usage events wait here until JetStream acknowledged them (ADR 0009). Relative paths are
    # taken from the working directory (/var/lib/tollgate in the image).
    usage_spool_dir: Path = Path("usage-spool")
    # Per gateway process; when full, new events are dropped and counted, never waited for.
    usage_spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024 * 1024)
    usage_publish_timeout_seconds: float = Field(5.0, gt=0)

    # Rate limits (ADR 0010). Plans map a tier name to its org-wide quotas, e.g.
    # TOLLGATE_GATEWAY_RATE_LIMIT_PLANS='{"free": {"per_hour": 1000, "per_day": 10000}, ...}'.
    rate_limit_plans: dict[str, Limits] = Field(default_factory=lambda: dict(DEFAULT_PLANS))
    rate_limit_unknown_plan: str = "free"  # applied to a plan name missing from the map
    rate_limit_bucket: str = Field("TOLLGATE_RATE_LIMITS", pattern=r"^[A-Za-z0-9_-]+$")
    # A call to the shared counters slower than this makes the replica decide locally.
    rate_limit_timeout_seconds: float = Field(0.25, gt=0)
    rate_limit_max_lease: int = Field(1000, ge=1)
    rate_limit_idle_return_seconds: float = Field(2.0, gt=0)

    # Quotas per billing period: metering's events update the gateway's copy at once; its
    # snapshot is loaded again this often as a safety net (and after every NATS reconnect).
    quota_resync_seconds: float = Field(60.0, gt=0)
    # One snapshot request; metering slower than this counts as down (the gateway fails open).
    quota_snapshot_timeout_seconds: float = Field(5.0, gt=0)

    def secret_values(self) -> dict[str, str]:
        return {
            "TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY": self.identity_private_key,
            "TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY": self.user_token_public_key,
        }

    def service_urls(self) -> dict[str, str]:
        """Where each built-in service answers (grows as services are added)."""
        return {"keys": self.keys_url, "metering": self.metering_url, "billing": self.billing_url}
