"""Password hashing (argon2 through passlib) and the password rules."""

import anyio
from passlib.context import CryptContext

MIN_LENGTH = 10
MAX_LENGTH = 128

_context = CryptContext(schemes=["argon2"], deprecated="auto")
# Verified when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _context.hash("tollgate-timing-equaliser")


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why a new password is refused; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    if password.strip() != password:
        problems.append("must not start or end with spaces")
    if len(set(password)) < 4:
        problems.append("must use at least 4 different characters")
    if email and email.split("@")[0].lower() in password.lower() and len(email.split("@")[0]) > 3:
        problems.append("must not contain your email name")
    return problems


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await anyio.to_thread.run_sync(_context.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    return bool(
        await anyio.to_thread.run_sync(_context.verify, password, password_hash or _DUMMY_HASH)
    ) and password_hash is not None
