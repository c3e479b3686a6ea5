import uuid
from datetime import datetime

from pydantic import BaseModel

from tollgate_billing.catalog.schemas import PlanPublic


class CustomerPublic(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    plan: PlanPublic
    created_at: datetime
    updated_at: datetime
