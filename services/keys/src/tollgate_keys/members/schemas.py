import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tollgate_keys.members.models import Role
from tollgate_keys.users.schemas import FullName, Password


class MemberPublic(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str | None
    role: Role
    joined_at: datetime


class MemberAdd(BaseModel):
    """Add an existing user at once, or invite a new one (the response carries the token)."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    role: Role = Role.MEMBER


class MemberRoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class InvitationPublic(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    expires_at: datetime


class MemberAdded(BaseModel):
    status: Literal["added", "invited"]
    member: MemberPublic | None = None
    invitation: InvitationPublic | None = None
    invitation_token: str | None = Field(
        None, description="Shown once: send it to the invitee, who accepts with a password."
    )


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    token: str = Field(min_length=10, max_length=200)
    password: Password
    full_name: FullName | None = None
