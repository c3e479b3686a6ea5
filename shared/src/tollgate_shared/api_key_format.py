"""The API key format every process agrees on (see docs/adr/0002-api-key-format-and-storage.md).

tg_live_ or tg_test_ + 32 base62 random characters (190 bits, CSPRNG) + 6 base62 characters of
CRC32 over everything before them. The checksum lets the gateway refuse typos and garbage
without a lookup, and lets secret scanners match keys. Keys are stored only as SHA-256 hashes.
"""

import hashlib
import re
import secrets
import zlib
from typing import Literal

Environment = Literal["live", "test"]
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
DISPLAY_PREFIX_LENGTH = 12  # "tg_live_" and the first 4 random characters
_SHAPE = re.compile(rf"^tg_(live|test)_[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH},128}}$")


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate_key(environment: Environment = "live") -> str:
    body = f"tg_{environment}_" + "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def is_well_formed(key: str) -> bool:
    """Shape and checksum only: no lookup, constant work for any input length."""
    if len(key) > 140 or not _SHAPE.match(key):
        return False
    body, check = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(checksum(body), check)


def hash_key(key: str) -> str:
    """SHA-256 hex: the key carries 190 random bits, so no salt or pepper is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def last_four(key: str) -> str:
    return key[-4:]


def environment_of(key: str) -> Environment:
    return "test" if key.startswith("tg_test_") else "live"
