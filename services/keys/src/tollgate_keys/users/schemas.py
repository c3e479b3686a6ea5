import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=1, max_length=256)
    organization_id: uuid.UUID | None = Field(
        None, description="Which organisation to act in, when the user belongs to several"
    )


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=10, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
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
