import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# Never trimmed, even in models that trim their strings: the password is exactly what was typed
# (the password rules refuse surrounding spaces rather than silently dropping them).
Password = Annotated[
    str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=256)
]
# No control characters (PostgreSQL refuses NUL; newlines would break emails and logs).
FullName = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: Password
    organization_id: uuid.UUID | None = Field(
        None, description="Which organisation to act in, when the user belongs to several"
    )


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=10, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str | None
    is_super_admin: bool
    created_at: datetime


class MembershipSummary(BaseModel):
    organization_id: uuid.UUID
    organization_name: str
    role: str


class Me(BaseModel):
    principal_type: str
    user: UserPublic | None = None
    key_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None
    roles: list[str]
    scopes: list[str]
    memberships: list[MembershipSummary] = []
