"""The platform super admin comes from configuration, never from a default credential."""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.config import KeysSettings
from tollgate_keys.users.passwords import hash_password, verify_password
from tollgate_keys.users.repository import UserRepository
from tollgate_keys.users.service import register_user

logger = structlog.get_logger(__name__)


async def ensure_super_admin(
    sessionmaker: async_sessionmaker[AsyncSession], settings: KeysSettings
) -> None:
    if not (settings.superadmin_email and settings.superadmin_password):
        return
    email = str(settings.superadmin_email).lower()
    async with sessionmaker() as session, session.begin():
        user = await UserRepository(session).get_by_email(email)
        if user is None:
            user = await register_user(
                session,
                settings=settings,
                email=email,
                password=settings.superadmin_password,
                full_name="Platform admin",
                org_id=None,
            )
        elif not await verify_password(
            settings.superadmin_password, user.password_hash, hashing=settings.password_hashing
        ):
            user.password_hash = await hash_password(
                settings.superadmin_password, hashing=settings.password_hashing
            )
        user.is_super_admin = True
        session.add(user)
    logger.info("super admin ensured", email=email)
