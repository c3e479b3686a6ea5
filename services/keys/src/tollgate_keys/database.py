"""The per-request session of this service's endpoints.

The kit's request_session, closed with scope="function": FastAPI then commits before it sends
the response. With the default scope ("request") the commit runs after the client already has
its 2xx, so a failed commit is never reported and a quick client can read before the write is
visible. To be replaced by tollgate_shared.database.SessionDep once the kit declares it so.
Every endpoint and dependency of this service must use this one: FastAPI shares a session
between dependencies only when they declare it with the same scope.
"""

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.database import request_session

SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
