import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

OrganizationName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class OrganizationPublic(BaseModel):
    id: uuid.UUID
    name: str
    plan: str
    suspended: bool = Field(
        description="Suspended for non-payment: calls to the operator's API are refused with "
        "402 until the open invoice is paid"
    )
    created_at: datetime


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OrganizationName
