from fastapi import APIRouter, Request, status

from tollgate_keys.auth import Anyone
from tollgate_keys.signup import service
from tollgate_keys.signup.schemas import SignupRequest, SignupResult
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/signup", tags=["signup"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SignupResult)
async def sign_up(
    body: SignupRequest, _caller: Anyone, session: SessionDep, request: Request
) -> SignupResult:
    """Create an organisation, its admin and a first API key (shown once), and sign in."""
    return await service.sign_up(session, settings=request.app.state.settings, request=body)
