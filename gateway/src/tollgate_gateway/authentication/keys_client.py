"""The gateway's calls to the keys service, made with a service identity."""

import httpx

from tollgate_gateway.authentication.key_cache import VerifiedKey
from tollgate_shared.identity import IDENTITY_HEADER, Identity, TokenSigner

SERVICE_IDENTITY = Identity(principal_type="service", principal_id="gateway")


class KeysUnreachable(Exception):
    """The keys service did not answer usefully (down, timeout, 5xx)."""


class KeysClient:
    def __init__(self, *, base_url: str, signer: TokenSigner, timeout_seconds: float) -> None:
        self._signer = signer
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_seconds)

    def _headers(self) -> dict[str, str]:
        return {IDENTITY_HEADER: self._signer.sign(SERVICE_IDENTITY.to_claims())}

    async def verify(self, secret_hash: str) -> VerifiedKey | None:
        """The key record, or None when the secret is unknown, revoked or expired."""
        try:
            response = await self._http.post(
                "/internal/v1/keys/verify",
                json={"secret_hash": secret_hash},
                headers=self._headers(),
            )
        except httpx.HTTPError as error:
            raise KeysUnreachable(repr(error)) from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise KeysUnreachable(f"keys answered {response.status_code}")
        return VerifiedKey.model_validate_json(response.content)

    async def report_usage(self, usage: list[dict[str, object]]) -> None:
        try:
            response = await self._http.post(
                "/internal/v1/keys/usage", json={"keys": usage}, headers=self._headers()
            )
        except httpx.HTTPError as error:
            raise KeysUnreachable(repr(error)) from error
        if response.status_code != 200:
            raise KeysUnreachable(f"keys answered {response.status_code}")

    async def close(self) -> None:
        await self._http.aclose()
