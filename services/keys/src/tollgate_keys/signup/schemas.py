from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tollgate_keys.api_keys.schemas import ApiKeyCreated
from tollgate_keys.organizations.schemas import OrganizationName, OrganizationPublic
from tollgate_keys.users.schemas import FullName, Password, TokenPair, UserPublic


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organization_name: OrganizationName
    email: EmailStr
    password: Password
    full_name: FullName | None = None


class SignupResult(BaseModel):
    organization: OrganizationPublic
    user: UserPublic
    api_key: ApiKeyCreated = Field(description="The first key; the full key is shown only here.")
    tokens: TokenPair
