from pydantic import EmailStr, Field, model_validator
from pydantic_settings import SettingsConfigDict

from tollgate_keys.users.passwords import SECURE, PasswordHashing
from tollgate_shared.settings import Ed25519PrivateKey, ServiceSettings


class KeysSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_KEYS_",
        extra="ignore",
        populate_by_name=True,
        # A refused value may be a secret (a private key with a typo): never print it.
        hide_input_in_errors=True,
    )

    # Base64url Ed25519 private key for user access tokens; the gateway holds the public half.
    # Checked when the settings load, so a malformed key stops the start.
    token_private_key: Ed25519PrivateKey = ""
    access_token_ttl_seconds: int = Field(900, ge=60, le=86400)
    refresh_token_ttl_seconds: int = Field(30 * 86400, ge=3600)
    # How long the previous secret of a rotated key keeps working by default.
    rotation_grace_seconds: int = Field(86400, ge=0, le=30 * 86400)
    invitation_ttl_seconds: int = Field(7 * 86400, ge=3600)
    expiry_sweep_interval_seconds: float = Field(5.0, gt=0)
    # The durable consumer of billing's subscription events (each org's plan tier).
    subscriptions_consumer_name: str = Field("keys-subscriptions", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Platform super admin, created or updated at start-up when both are set.
    superadmin_email: EmailStr | None = None
    superadmin_password: str | None = None
    # argon2id cost. "fast-for-tests" exists only so test suites can create many users quickly.
    password_hashing: PasswordHashing = SECURE

    @model_validator(mode="after")
    def _refuse_fast_hashing_outside_dev(self) -> "KeysSettings":
        if self.password_hashing != SECURE and not self.is_dev:
            raise ValueError("TOLLGATE_KEYS_PASSWORD_HASHING must be 'secure' outside dev mode")
        return self

    def secret_values(self) -> dict[str, str]:
        return {"TOLLGATE_KEYS_TOKEN_PRIVATE_KEY": self.token_private_key}
