"""Identity tokens: minted by the gateway (Ed25519 private key), verified by services (public key).

Services trust nothing but this token: it says who calls (user, API key, service or anonymous),
for which organisation, with which roles and scopes, and under which request id.
"""

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, Request

from tollgate_shared.errors import ForbiddenError, UnauthorizedError

IDENTITY_HEADER = "X-Tollgate-Identity"
ISSUER = "tollgate-gateway"
AUDIENCE = "tollgate-services"
ALGORITHM = "EdDSA"

PrincipalType = Literal["user", "key", "service", "anonymous"]


@dataclass(frozen=True)
class Identity:
    principal_type: PrincipalType
    principal_id: str | None = None
    org_id: uuid.UUID | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    plan: str | None = None

    @property
    def is_super_admin(self) -> bool:
        return self.principal_type == "user" and "super_admin" in self.roles

    def has_role(self, *roles: str) -> bool:
        return self.is_super_admin or any(role in self.roles for role in roles)

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def to_claims(self) -> dict[str, Any]:
        claims = {
            "sub": self.principal_id,
            "ptype": self.principal_type,
            "org": str(self.org_id) if self.org_id else None,
            "roles": sorted(self.roles),
            "scopes": sorted(self.scopes),
            "plan": self.plan,
        }
        return {name: value for name, value in claims.items() if value is not None}

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> "Identity":
        """Raise ValueError for claims no gateway would sign (wrong types, missing ids)."""
        principal_type = claims.get("ptype")
        if principal_type not in ("user", "key", "service", "anonymous"):
            raise ValueError(f"unknown principal type {principal_type!r}")
        principal_id = claims.get("sub")
        if principal_type in ("user", "key"):
            principal_id = str(uuid.UUID(str(principal_id)))  # ValueError when not a UUID
        roles, scopes = claims.get("roles", []), claims.get("scopes", [])
        if not isinstance(roles, list) or not isinstance(scopes, list):
            raise ValueError("roles and scopes must be lists")
        org = claims.get("org")
        return cls(
            principal_type=principal_type,
            principal_id=principal_id,
            org_id=uuid.UUID(str(org)) if org else None,
            roles=frozenset(str(role) for role in roles),
            scopes=frozenset(str(scope) for scope in scopes),
            plan=claims.get("plan"),
        )


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private, public), each base64url of the raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _b64encode(private.private_bytes_raw()), _b64encode(public_raw)


def load_private_key(value: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_b64decode(value))


def load_public_key(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_b64decode(value))


class TokenSigner:
    """Mints short-lived EdDSA JWTs: identity tokens (gateway), user access tokens (keys)."""

    def __init__(self, private_key: str, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = load_private_key(private_key)
        self.issuer, self.audience, self.ttl_seconds = issuer, audience, ttl_seconds

    def sign(self, claims: dict[str, Any], *, ttl_seconds: int | None = None) -> str:
        now = int(time.time())
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + (self.ttl_seconds if ttl_seconds is None else ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    def __init__(self, public_key: str, *, issuer: str, audience: str, leeway: int = 5) -> None:
        self._key = load_public_key(public_key)
        self.issuer, self.audience, self.leeway = issuer, audience, leeway

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims, or raise jwt.InvalidTokenError."""
        return jwt.decode(
            token,
            self._key,
            algorithms=[ALGORITHM],
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )


def identity_signer(private_key: str, ttl_seconds: int = 60) -> TokenSigner:
    return TokenSigner(private_key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl_seconds)


def identity_verifier(public_key: str) -> TokenVerifier:
    return TokenVerifier(public_key, issuer=ISSUER, audience=AUDIENCE)


def service_signer(private_key: str, *, caller: str, callee: str) -> TokenSigner:
    """A service's own signer for calling one other service directly (ADR 0018): issuer
    tollgate-<caller>, audience tollgate-<callee>, so the token is good nowhere else."""
    return TokenSigner(
        private_key, issuer=f"tollgate-{caller}", audience=f"tollgate-{callee}", ttl_seconds=60
    )


def service_verifier(public_key: str, *, caller: str, callee: str) -> TokenVerifier:
    """Verifies the tokens service_signer mints for callee."""
    return TokenVerifier(public_key, issuer=f"tollgate-{caller}", audience=f"tollgate-{callee}")


async def read_identity(request: Request) -> Identity:
    """FastAPI dependency: the verified identity of the caller (app.state.identity_verifier).

    Async on purpose: it runs in the request's task, so the log context it binds (org,
    principal) reaches every later log line of the request, the access line included."""
    token = request.headers.get(IDENTITY_HEADER)
    if not token:
        raise UnauthorizedError("This service is only reachable through the gateway.")
    verifier: TokenVerifier = request.app.state.identity_verifier
    try:
        identity = Identity.from_claims(verifier.verify(token))
    except (jwt.InvalidTokenError, KeyError, ValueError) as error:
        raise UnauthorizedError("The identity token is invalid or expired.") from error
    request.state.identity = identity
    bind_identity_to_logs(identity)
    return identity


def bind_identity_to_logs(identity: Identity) -> None:
    structlog.contextvars.bind_contextvars(
        org_id=str(identity.org_id) if identity.org_id else None,
        principal=f"{identity.principal_type}:{identity.principal_id or '-'}",
    )


async def require_org_identity(identity: Annotated[Identity, Depends(read_identity)]) -> Identity:
    """A user or API key acting inside an organisation."""
    if identity.principal_type not in ("user", "key") or identity.org_id is None:
        raise UnauthorizedError("Sign in or use an API key of an organisation.")
    return identity


async def require_service_identity(
    identity: Annotated[Identity, Depends(read_identity)],
) -> Identity:
    if identity.principal_type != "service":
        raise ForbiddenError("Only Tollgate services may call this endpoint.")
    return identity


AnyIdentity = Annotated[Identity, Depends(read_identity)]
OrgIdentity = Annotated[Identity, Depends(require_org_identity)]
ServiceIdentity = Annotated[Identity, Depends(require_service_identity)]
