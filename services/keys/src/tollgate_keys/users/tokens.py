"""User access tokens (EdDSA JWT, verified by the gateway) and opaque refresh tokens."""

import hashlib
import secrets
import uuid

from tollgate_shared.identity import TokenSigner

ACCESS_ISSUER = "tollgate-keys"
ACCESS_AUDIENCE = "tollgate-gateway"


def access_token_signer(private_key: str, ttl_seconds: int) -> TokenSigner:
    return TokenSigner(
        private_key, issuer=ACCESS_ISSUER, audience=ACCESS_AUDIENCE, ttl_seconds=ttl_seconds
    )


def access_claims(
    *,
    user_id: uuid.UUID,
    org_id: uuid.UUID | None,
    roles: list[str],
    plan: str | None,
    suspended: bool,
) -> dict[str, object]:
    """`suspended`: the organisation's state when signed; the gateway refuses the operator's
    routes by it, so a change reaches users at their next refresh (ADR 0022)."""
    return {
        "sub": str(user_id),
        "org": str(org_id) if org_id else None,
        "roles": roles,
        "plan": plan,
        "suspended": suspended,
    }


def new_opaque_token(prefix: str) -> tuple[str, str]:
    """(token, sha256 hash): refresh and invitation tokens are stored only as hashes."""
    token = prefix + secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
