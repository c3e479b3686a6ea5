from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tollgate_keys.api_keys.schemas import ApiKeyCreated
from tollgate_keys.organizations.schemas import OrganizationName, OrganizationPublic
from tollgate_keys.users.schemas import TokenPair, UserPublic


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organization_name: OrganizationName
    email: EmailStr
    password: str = Field(min_length=1, max_length=256)
    full_name: str | None = Field(None, max_length=200)


class SignupResult(BaseModel):
    organization: OrganizationPublic
    user: UserPublic
    api_key: ApiKeyCreated = Field(description="The first key; the full key is shown only here.")
    tokens: TokenPair
