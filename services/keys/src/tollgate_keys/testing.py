"""Test support for suites that run a real keys service (its own tests, the gateway's)."""

from tollgate_keys.app import MIGRATIONS_DIR
from tollgate_keys.config import KeysSettings
from tollgate_keys.events import SERVICE
from tollgate_shared.migrations import upgrade


def migrated_test_settings(
    *,
    database_url: str,
    nats_url: str,
    identity_public_key: str,
    token_private_key: str,
    subscriptions_consumer_name: str = "keys-subscriptions",
) -> KeysSettings:
    """Migrate the keys schema into database_url and return test settings for it.

    Suites sharing one NATS server should give each keys app its own consumer name, or the
    apps split the BILLING stream's events between their databases."""
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
    return KeysSettings(
        env="test",
        database_url=database_url,
        nats_url=nats_url,
        identity_public_key=identity_public_key,
        token_private_key=token_private_key,
        expiry_sweep_interval_seconds=0.2,
        subscriptions_consumer_name=subscriptions_consumer_name,
        # Tests hash hundreds of passwords; production keeps the secure default.
        password_hashing="fast-for-tests",  # noqa: S106 - a mode name, not a password
    )
