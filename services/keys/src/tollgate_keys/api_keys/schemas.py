import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Scope = Literal["read", "write", "admin"]
KeyStatus = Literal["active", "revoked", "expired"]
DEFAULT_SCOPES: tuple[Scope, ...] = ("read", "write")
MAX_GRACE_SECONDS = 30 * 86400


def _in_future(value: datetime | None) -> datetime | None:
    if value is not None and value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


def _unique(scopes: list[Scope]) -> list[Scope]:
    return sorted(set(scopes))


FutureTime = Annotated[AwareDatetime, AfterValidator(_in_future)]
Scopes = Annotated[list[Scope], Field(min_length=1, max_length=3), AfterValidator(_unique)]
KeyName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class RateLimitOverride(BaseModel):
    """This key's own rate limits, per fixed window. The gateway enforces it on every request
    made with the key; the organisation's plan still applies as well, so an override can only
    make the key stricter."""

    model_config = ConfigDict(extra="forbid")

    per_second: int | None = Field(None, ge=1, le=1_000_000)
    per_minute: int | None = Field(None, ge=1, le=1_000_000_000)
    per_hour: int | None = Field(None, ge=1, le=1_000_000_000)
    per_day: int | None = Field(None, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _at_least_one(self) -> "RateLimitOverride":
        if not self.model_dump(exclude_none=True):
            raise ValueError("set at least one of per_second, per_minute, per_hour, per_day")
        return self


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: KeyName
    scopes: Scopes = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    environment: Literal["live", "test"] = "live"
    expires_at: FutureTime | None = None
    rate_limit: RateLimitOverride | None = None


class ApiKeyUpdate(BaseModel):
    """Only the fields sent are changed; expires_at or rate_limit set to null remove them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: KeyName | None = None
    scopes: Scopes | None = None
    expires_at: FutureTime | None = None
    rate_limit: RateLimitOverride | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> "ApiKeyUpdate":
        if not self.model_fields_set:
            raise ValueError("send at least one of name, scopes, expires_at, rate_limit")
        for required in ("name", "scopes"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be null")
        return self


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int | None = Field(
        None, ge=0, le=MAX_GRACE_SECONDS, description="How long the previous secret keeps working"
    )


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    name: str
    environment: str
    scopes: list[str]
    masked_key: str
    rate_limit: dict[str, int] | None
    status: KeyStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    request_count: int


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The full key. Shown only in this response; store it now.")


class ApiKeyRotated(ApiKeyCreated):
    previous_secret_expires_at: datetime


class KeyVerificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class VerifiedKey(BaseModel):
    """What the gateway caches for a valid secret."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    name: str
    environment: str
    scopes: list[str]
    rate_limit: dict[str, int] | None
    plan: str
    suspended: bool = Field(
        description="The organisation is suspended for non-payment: the gateway refuses its "
        "calls to the operator's API"
    )
    expires_at: datetime | None = Field(description="When this secret stops working, if ever")


class KeyUsage(BaseModel):
    key_id: uuid.UUID
    last_used_at: AwareDatetime
    requests: int = Field(ge=0, le=10**12)


class KeyUsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyUsage] = Field(max_length=10_000)
