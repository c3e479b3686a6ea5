"""Who is calling: an API key, a user's access token, or nobody (public routes)."""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import jwt
import structlog

from tollgate_gateway.authentication.key_cache import KeyCache, VerifiedKey
from tollgate_gateway.authentication.keys_client import KeysClient, KeysUnreachable
from tollgate_gateway.errors import InvalidApiKeyError, InvalidTokenError, KeysUnavailableError
from tollgate_shared import api_key_format
from tollgate_shared.errors import UnauthorizedError
from tollgate_shared.identity import Identity, TokenVerifier

logger = structlog.get_logger(__name__)

USER_TOKEN_ISSUER = "tollgate-keys"  # noqa: S105 - an issuer name, not a secret
USER_TOKEN_AUDIENCE = "tollgate-gateway"  # noqa: S105


def credential_from(authorization: str | None, api_key_header: str | None) -> str | None:
    """The bearer credential, from `Authorization: Bearer <x>` or `X-API-Key: <x>`."""
    if api_key_header:
        return api_key_header.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise UnauthorizedError("Use `Authorization: Bearer <key or token>`.")
    return None


class Caller(NamedTuple):
    identity: Identity
    key: VerifiedKey | None  # for an API key
    # The caller's organisation is suspended for non-payment: from the verified key, or from a
    # user's access token as it was signed (ADR 0022).
    suspended: bool


class Authenticator:
    def __init__(
        self,
        *,
        cache: KeyCache,
        keys: KeysClient,
        user_tokens: TokenVerifier,
        refresh_after_seconds: float,
    ) -> None:
        self.cache, self.keys, self.user_tokens = cache, keys, user_tokens
        self.refresh_after_seconds = refresh_after_seconds
        # Pending lookups by secret, with the cache generation they started in.
        self._lookups: dict[str, tuple[int, asyncio.Future[VerifiedKey | None]]] = {}

    async def authenticate(self, credential: str) -> Caller:
        if credential.startswith("tg_"):
            key = await self.verify_api_key(credential)
            identity = Identity(
                principal_type="key",
                principal_id=str(key.key_id),
                org_id=key.org_id,
                scopes=frozenset(key.scopes),
                plan=key.plan,
            )
            return Caller(identity, key, key.suspended)
        return self.verify_user_token(credential)

    async def verify_api_key(self, key: str) -> VerifiedKey:
        # Shape and checksum first: garbage never costs a lookup.
        if not api_key_format.is_well_formed(key):
            raise InvalidApiKeyError("The API key is malformed.")
        secret_hash = api_key_format.hash_key(key)
        now = datetime.now(UTC)
        cached = self.cache.get(secret_hash)
        if cached is not None and time.monotonic() - cached.checked_at < self.refresh_after_seconds:
            if cached.expired(now):
                raise InvalidApiKeyError("The API key has expired.")
            return cached.key
        if cached is None and self.cache.is_known_invalid(secret_hash):
            raise InvalidApiKeyError("The API key is not valid.")
        try:
            generation = self.cache.generation
            verified = await self._look_up(secret_hash, generation)
        except KeysUnreachable as error:
            if cached is not None and not cached.expired(now):
                logger.warning(
                    "keys unreachable; serving cached key", key_id=str(cached.key.key_id)
                )
                return cached.key
            raise KeysUnavailableError(
                "The keys service is unreachable; retry shortly.", headers={"Retry-After": "1"}
            ) from error
        if verified is None:
            if cached is not None:
                self.cache.evict_key(cached.key.key_id)
            self.cache.remember_invalid(secret_hash)
            raise InvalidApiKeyError("The API key is not valid (unknown, revoked or expired).")
        if self.cache.generation == generation:
            # Not when a key event arrived meanwhile: the answer may predate a revocation.
            self.cache.put(secret_hash, verified)
        return verified

    async def _look_up(self, secret_hash: str, generation: int) -> VerifiedKey | None:
        """One call to keys per secret at a time: a burst of requests with a key this replica
        has not cached yet (after a start, a refresh) shares it instead of queueing N calls.
        Only lookups started since the last key event are shared."""
        pending = self._lookups.get(secret_hash)
        if pending is None or pending[0] != generation:
            lookup = asyncio.ensure_future(self.keys.verify(secret_hash))
            pending = (generation, lookup)
            self._lookups[secret_hash] = pending
            lookup.add_done_callback(lambda done: self._forget_lookup(secret_hash, done))
        # Shielded: one client hanging up must not cancel the lookup the others wait on.
        return await asyncio.shield(pending[1])

    def _forget_lookup(self, secret_hash: str, done: "asyncio.Future[VerifiedKey | None]") -> None:
        current = self._lookups.get(secret_hash)
        if current is not None and current[1] is done:
            del self._lookups[secret_hash]
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every waiter was cancelled

    def verify_user_token(self, token: str) -> Caller:
        try:
            claims = self.user_tokens.verify(token)
            org = claims.get("org")
            identity = Identity(
                principal_type="user",
                principal_id=str(uuid.UUID(claims["sub"])),
                org_id=uuid.UUID(org) if org else None,
                roles=frozenset(claims.get("roles") or ()),
                plan=claims.get("plan"),
            )
            # Tokens signed before suspension existed lack the claim: not suspended.
            return Caller(identity, None, claims.get("suspended") is True)
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as error:
            raise InvalidTokenError("The access token is invalid or expired.") from error
