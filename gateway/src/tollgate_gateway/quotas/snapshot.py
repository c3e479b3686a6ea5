"""GET {metering}/internal/v1/entitlements: every entitlement state in grace or exceeded."""

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from tollgate_gateway.authentication.keys_client import SERVICE_IDENTITY
from tollgate_gateway.quotas.states import EntitlementState
from tollgate_shared.identity import IDENTITY_HEADER, TokenSigner

logger = structlog.get_logger(__name__)
SNAPSHOT_PATH = "/internal/v1/entitlements"


class SnapshotUnavailable(Exception):
    """Metering did not answer with a snapshot (down, timeout, non-200, unreadable body)."""


class _Snapshot(BaseModel):
    items: list[dict[str, object]]


class MeteringClient:
    def __init__(self, *, base_url: str, signer: TokenSigner, timeout_seconds: float) -> None:
        self._signer = signer
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_seconds)

    async def entitlement_snapshot(self) -> list[EntitlementState]:
        """Every state metering lists; an item outside the contract is skipped and logged (one
        bad row must not hide the others)."""
        headers = {IDENTITY_HEADER: self._signer.sign(SERVICE_IDENTITY.to_claims())}
        try:
            response = await self._http.get(SNAPSHOT_PATH, headers=headers)
        except httpx.HTTPError as error:
            raise SnapshotUnavailable(repr(error)) from error
        if response.status_code != 200:
            raise SnapshotUnavailable(f"metering answered {response.status_code}")
        try:
            snapshot = _Snapshot.model_validate_json(response.content)
        except ValidationError as error:
            detail = f"unreadable snapshot: {error.error_count()} errors"
            raise SnapshotUnavailable(detail) from error
        states = []
        for item in snapshot.items:
            try:
                states.append(EntitlementState.parse(item))
            except ValidationError as error:
                logger.warning("entitlement snapshot item skipped", error=str(error))
        return states

    async def close(self) -> None:
        await self._http.aclose()
