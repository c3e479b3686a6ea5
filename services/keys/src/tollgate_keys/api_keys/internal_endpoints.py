"""Endpoints for the gateway only (service identity); never routed from outside."""

from fastapi import APIRouter

from tollgate_keys.api_keys import service
from tollgate_keys.api_keys.schemas import KeyUsageReport, KeyVerificationRequest, VerifiedKey
from tollgate_keys.auth import GatewayService
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/internal/v1/keys", tags=["internal"])


@router.post("/verify", response_model=VerifiedKey)
async def verify_key(
    body: KeyVerificationRequest, _gateway: GatewayService, session: SessionDep
) -> VerifiedKey:
    """The key record for a secret's SHA-256 hash; 404 (with a reason) when it is not valid."""
    return await service.verify_secret_hash(session, secret_hash=body.secret_hash)


@router.post("/usage")
async def record_usage(
    body: KeyUsageReport, _gateway: GatewayService, session: SessionDep
) -> dict[str, int]:
    """Batched last-used times and request counts, so no request writes to the database."""
    return {"updated": await service.record_usage(session, usage=body.keys)}
