"""The platform super admin comes from configuration, never from a default credential."""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.config import KeysSettings
from tollgate_keys.users.passwords import hash_password, password_problems, verify_password
from tollgate_keys.users.repository import UserRepository
from tollgate_keys.users.service import EmailTakenError, register_user

logger = structlog.get_logger(__name__)


class SuperAdminConfigError(RuntimeError):
    """The configured super admin cannot be applied; the service must not start."""


def _refuse(reason: str) -> SuperAdminConfigError:
    # Logged on a line of its own: in the start-up traceback it is the last of many lines.
    logger.error("super admin configuration refused", reason=reason)
    return SuperAdminConfigError(reason)


async def ensure_super_admin(
    sessionmaker: async_sessionmaker[AsyncSession], settings: KeysSettings
) -> None:
    """Apply the configured super admin. Replicas starting together race to create it; the
    losers find the winner's account on their second look."""
    try:
        await _ensure_super_admin(sessionmaker, settings)
    except EmailTakenError:
        await _ensure_super_admin(sessionmaker, settings)


async def _ensure_super_admin(
    sessionmaker: async_sessionmaker[AsyncSession], settings: KeysSettings
) -> None:
    """Create the configured super admin, or give it the configured password when that changed.

    Raises SuperAdminConfigError when the password breaks the password rules, or when the email
    belongs to an account that is not a super admin: a customer account is never promoted
    silently.
    """
    if not (settings.superadmin_email and settings.superadmin_password):
        return
    email = str(settings.superadmin_email).lower()
    password = settings.superadmin_password
    if problems := password_problems(password, email=email):
        raise _refuse(
            "TOLLGATE_KEYS_SUPERADMIN_PASSWORD breaks the password rules: it "
            + "; it ".join(problems)
            + "."
        )
    async with sessionmaker() as session, session.begin():
        user = await UserRepository(session).get_by_email(email)
        if user is None:
            user = await register_user(
                session,
                settings=settings,
                email=email,
                password=password,
                full_name="Platform admin",
                org_id=None,
            )
            user.is_super_admin = True
            session.add(user)
            logger.info("super admin created", email=email)
        elif not user.is_super_admin:
            raise _refuse(
                f"TOLLGATE_KEYS_SUPERADMIN_EMAIL ({email}) belongs to an existing account that is "
                "not a super admin; refusing to promote it. Configure another email."
            )
        elif not await verify_password(
            password, user.password_hash, hashing=settings.password_hashing
        ):
            user.password_hash = await hash_password(password, hashing=settings.password_hashing)
            session.add(user)
            logger.info("super admin password changed", email=email)
