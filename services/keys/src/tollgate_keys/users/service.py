"""Sign-in: check credentials, issue access and refresh tokens, rotate refresh tokens."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_keys.config import KeysSettings
from tollgate_keys.events import KeysEvent, publish
from tollgate_keys.members.models import Membership
from tollgate_keys.organizations.models import Organization
from tollgate_keys.users.models import RefreshToken, User
from tollgate_keys.users.passwords import hash_password, password_problems, verify_password
from tollgate_keys.users.repository import UserRepository
from tollgate_keys.users.schemas import TokenPair
from tollgate_keys.users.tokens import (
    access_claims,
    access_token_signer,
    hash_opaque_token,
    new_opaque_token,
)
from tollgate_shared.errors import (
    ConflictError,
    ForbiddenError,
    UnauthorizedError,
    ValidationProblem,
)

REFRESH_PREFIX = "tgr_"


class InvalidCredentialsError(UnauthorizedError):
    slug, title = "invalid-credentials", "Invalid email or password"


class InvalidRefreshTokenError(UnauthorizedError):
    slug, title = "invalid-refresh-token", "Invalid refresh token"


class RefreshTokenReusedError(InvalidRefreshTokenError):
    """The user's refresh tokens were revoked: that revocation must be committed."""


class NoMembershipError(ForbiddenError):
    slug, title = "no-membership", "Not a member of this organisation"


def _now() -> datetime:
    return datetime.now(UTC)


async def _choose_membership(
    session: AsyncSession, *, user: User, org_id: uuid.UUID | None
) -> tuple[Membership, Organization] | None:
    memberships = await UserRepository(session).memberships(user.id)
    if org_id is not None:
        for membership, organization in memberships:
            if organization.id == org_id:
                return membership, organization
        raise NoMembershipError("You are not a member of that organisation.")
    if memberships:
        return memberships[0]
    if user.is_super_admin:
        return None
    raise NoMembershipError("You are not a member of any organisation.")


async def issue_tokens(
    session: AsyncSession,
    *,
    settings: KeysSettings,
    user: User,
    org_id: uuid.UUID | None = None,
) -> TokenPair:
    chosen = await _choose_membership(session, user=user, org_id=org_id)
    roles = [chosen[0].role] if chosen else []
    if user.is_super_admin:
        roles.append("super_admin")
    organization = chosen[1] if chosen else None
    signer = access_token_signer(settings.token_private_key, settings.access_token_ttl_seconds)
    access_token = signer.sign(
        access_claims(
            user_id=user.id,
            org_id=organization.id if organization else None,
            roles=roles,
            plan=organization.plan if organization else None,
            suspended=organization.suspended if organization else False,
        )
    )
    refresh_token, refresh_hash = new_opaque_token(REFRESH_PREFIX)
    await UserRepository(session).add_refresh_token(
        RefreshToken(
            user_id=user.id,
            org_id=organization.id if organization else None,
            token_hash=refresh_hash,
            expires_at=_now() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
    )


async def login(
    session: AsyncSession,
    *,
    settings: KeysSettings,
    email: str,
    password: str,
    org_id: uuid.UUID | None,
) -> TokenPair:
    user = await UserRepository(session).get_by_email(email)
    password_hash = user.password_hash if user else None
    # Verified even for an unknown email (against a dummy hash): both answers take as long.
    valid = await verify_password(password, password_hash, hashing=settings.password_hashing)
    if not valid or user is None:
        raise InvalidCredentialsError()
    return await issue_tokens(session, settings=settings, user=user, org_id=org_id)


async def refresh(session: AsyncSession, *, settings: KeysSettings, token: str) -> TokenPair:
    """Trade a refresh token for a new pair. Presenting an already-used token is treated as
    theft: every refresh token of the user is revoked."""
    repository = UserRepository(session)
    stored = await repository.get_refresh_token(hash_opaque_token(token))
    now = _now()
    if stored is None or stored.expires_at <= now:
        raise InvalidRefreshTokenError()
    if stored.revoked_at is not None:
        await repository.revoke_refresh_tokens(user_id=stored.user_id, at=now)
        raise RefreshTokenReusedError("This refresh token was already used; sign in again.")
    stored.revoked_at = now
    session.add(stored)
    user = await repository.get(stored.user_id)
    if user is None:
        raise InvalidRefreshTokenError()
    return await issue_tokens(session, settings=settings, user=user, org_id=stored.org_id)


async def logout(session: AsyncSession, *, token: str) -> None:
    stored = await UserRepository(session).get_refresh_token(hash_opaque_token(token))
    if stored is not None and stored.revoked_at is None:
        stored.revoked_at = _now()
        session.add(stored)


class EmailTakenError(ConflictError):
    slug, title = "email-taken", "Email already registered"


class WeakPasswordError(ValidationProblem):
    slug, title = "weak-password", "Password does not meet the rules"


async def register_user(
    session: AsyncSession,
    *,
    settings: KeysSettings,
    email: str,
    password: str,
    full_name: str | None,
    org_id: uuid.UUID | None,
) -> User:
    """Create a user (org_id: the organisation they join, for the event)."""
    email = email.lower()
    if problems := password_problems(password, email=email):
        raise WeakPasswordError(
            "The password " + "; ".join(problems) + ".",
            errors=[
                {"loc": ["body", "password"], "message": p, "type": "weak_password"}
                for p in problems
            ],
        )
    repository = UserRepository(session)
    if await repository.get_by_email(email) is not None:
        raise EmailTakenError("An account with this email already exists; sign in instead.")
    user = User(
        email=email,
        full_name=full_name,
        password_hash=await hash_password(password, hashing=settings.password_hashing),
    )
    try:
        async with session.begin_nested():
            await repository.add(user)
    except IntegrityError as error:  # a concurrent signup with the same email won the race
        raise EmailTakenError("An account with this email already exists.") from error
    await publish(
        session,
        KeysEvent.USER_CREATED,
        org_id=org_id,
        data={
            "user_id": str(user.id),
            "email": user.email,
            "full_name": user.full_name,
            "organization_id": str(org_id) if org_id else None,
        },
    )
    return user
