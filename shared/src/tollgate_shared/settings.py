"""Settings base: common variables without a prefix, service variables with TOLLGATE_<SERVICE>_."""

from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "production"]


def common(name: str) -> AliasChoices:
    """Read a setting shared by every process (TOLLGATE_<NAME>) or pass it by field name."""
    return AliasChoices(f"TOLLGATE_{name.upper()}", name)


class CommonSettings(BaseSettings):
    """What every process needs (gateway included). Subclasses set env_prefix."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore", populate_by_name=True)

    env: Environment = Field("production", validation_alias=common("env"))
    nats_url: str = Field(validation_alias=common("nats_url"))
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", validation_alias=common("log_format")
    )
    log_level: str = Field("INFO", validation_alias=common("log_level"))

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    @model_validator(mode="after")
    def _require_secrets(self) -> "CommonSettings":
        for name, value in self.secret_values().items():
            if not value:
                raise ValueError(f"{name} must be set")
            if not self.is_dev and value.startswith("dev-"):
                raise ValueError(f"{name} must be a real secret outside dev mode")
        return self

    def secret_values(self) -> dict[str, str]:
        """Secrets this process cannot run without (env name → value); overridden per process."""
        return {}


class ServiceSettings(CommonSettings):
    """What every service behind the gateway needs. Subclasses set env_prefix="TOLLGATE_<NAME>_"."""

    database_url: str = Field(validation_alias=common("database_url"))
    # Base64url Ed25519 public key of the gateway: services verify identity tokens, never mint them.
    identity_public_key: str = Field(validation_alias=common("identity_public_key"))
