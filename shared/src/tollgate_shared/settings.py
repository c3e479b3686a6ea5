"""Settings base: common variables without a prefix, service variables with TOLLGATE_<SERVICE>_."""

from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "production"]


def common(name: str) -> AliasChoices:
    """Read a setting shared by every process (TOLLGATE_<NAME>) or pass it by field name."""
    return AliasChoices(f"TOLLGATE_{name.upper()}", name)


class ServiceSettings(BaseSettings):
    """What every service process needs. Subclasses set env_prefix="TOLLGATE_<SERVICE>_"."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore", populate_by_name=True)

    env: Environment = Field("production", validation_alias=common("env"))
    database_url: str = Field(validation_alias=common("database_url"))
    nats_url: str = Field(validation_alias=common("nats_url"))
    # Base64url Ed25519 public key of the gateway: services verify identity tokens, never mint them.
    identity_public_key: str = Field(validation_alias=common("identity_public_key"))
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", validation_alias=common("log_format")
    )
    log_level: str = Field("INFO", validation_alias=common("log_level"))

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "ServiceSettings":
        if not self.is_dev:
            for name, value in self.secret_values().items():
                if not value or value.startswith("dev-"):
                    raise ValueError(f"{name} must be set to a real secret outside dev mode")
        return self

    def secret_values(self) -> dict[str, str]:
        """Secrets that must not keep a development default in production; overridden per service."""
        return {}
