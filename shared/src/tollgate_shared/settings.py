"""Settings base: common variables without a service prefix, process variables with one.

Only the TOLLGATE_* names are read from the environment; field names work as keyword arguments.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tollgate_shared.identity import load_private_key, load_public_key

Environment = Literal["dev", "test", "production"]


def common(name: str) -> str:
    """The environment variable of a setting shared by every process: TOLLGATE_<NAME>."""
    return f"TOLLGATE_{name.upper()}"


def _private_key(value: str) -> str:
    if value:
        try:
            load_private_key(value)
        except ValueError as error:
            raise ValueError("not a base64url Ed25519 private key (32 bytes)") from error
    return value


def _public_key(value: str) -> str:
    if value:
        try:
            load_public_key(value)
        except ValueError as error:
            raise ValueError("not a base64url Ed25519 public key (32 bytes)") from error
    return value


# Checked when settings load, so a bad key stops the process at start, not at first use.
Ed25519PrivateKey = Annotated[str, AfterValidator(_private_key)]
Ed25519PublicKey = Annotated[str, AfterValidator(_public_key)]


class CommonSettings(BaseSettings):
    """What every process needs (gateway included). Subclasses set env_prefix."""

    # hide_input_in_errors: a refused setting may be a mistyped secret; never print it.
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

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


class DatabaseSettings(BaseSettings):
    """Just the database: what a migration needs."""

    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    database_url: str = Field(validation_alias=common("database_url"))


class ServiceSettings(CommonSettings):
    """What every service behind the gateway needs. Subclasses set env_prefix="TOLLGATE_<NAME>_"."""

    database_url: str = Field(validation_alias=common("database_url"))
    # The gateway's public key: services verify identity tokens, never mint them.
    identity_public_key: Ed25519PublicKey = Field(validation_alias=common("identity_public_key"))

    def secret_values(self) -> dict[str, str]:
        return {"TOLLGATE_IDENTITY_PUBLIC_KEY": self.identity_public_key}
