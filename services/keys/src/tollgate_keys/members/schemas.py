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


class MemberInvite(BaseModel):
    """Invite someone by email, whether or not they have an account yet."""

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


class MemberInvited(BaseModel):
    status: Literal["invited"] = "invited"
    invitation: InvitationPublic
    invitation_token: str = Field(
        description="Shown once: send it to the invitee, who accepts it with a new password, "
        "or with their own if the email already has an account."
    )


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    token: str = Field(min_length=10, max_length=200)
    password: Password
    full_name: FullName | None = None
