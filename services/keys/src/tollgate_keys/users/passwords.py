"""Password hashing (argon2id through passlib) and the password rules."""

import functools
from typing import Literal

import anyio
from passlib.context import CryptContext

MIN_LENGTH = 10
MAX_LENGTH = 128

PasswordHashing = Literal["secure", "fast-for-tests"]
SECURE: PasswordHashing = "secure"

_CONTEXTS: dict[PasswordHashing, CryptContext] = {
    # passlib's argon2id defaults: 64 MiB, 3 passes, 4 lanes (about 100 ms of CPU per hash).
    "secure": CryptContext(schemes=["argon2"], deprecated="auto"),
    # Only for test suites that create hundreds of users; KeysSettings refuses it outside
    # dev/test. Hashes stay argon2id, so the secure context verifies them too.
    "fast-for-tests": CryptContext(
        schemes=["argon2"],
        argon2__memory_cost=1024,
        argon2__time_cost=1,
        argon2__parallelism=1,
    ),
}


@functools.cache
def _dummy_hash(hashing: PasswordHashing) -> str:
    """Verified when the email is unknown, so both paths cost the same."""
    return _CONTEXTS[hashing].hash("tollgate-timing-equaliser")


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


async def hash_password(password: str, *, hashing: PasswordHashing) -> str:
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await anyio.to_thread.run_sync(_CONTEXTS[hashing].hash, password)


async def verify_password(
    password: str, password_hash: str | None, *, hashing: PasswordHashing
) -> bool:
    def verify() -> bool:
        return bool(_CONTEXTS[hashing].verify(password, password_hash or _dummy_hash(hashing)))

    return await anyio.to_thread.run_sync(verify) and password_hash is not None
