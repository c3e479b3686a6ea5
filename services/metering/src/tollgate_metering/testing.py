"""Test support for suites that run a real metering service (its own tests, the gateway's)."""

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE, MeteringSettings
from tollgate_shared.migrations import upgrade


def migrated_test_settings(
    *,
    database_url: str,
    nats_url: str,
    identity_public_key: str,
    usage_consumer_name: str = "metering-usage",
    organizations_consumer_name: str = "metering-organizations",
) -> MeteringSettings:
    """Migrate the metering schema into database_url and return test settings for it.

    Suites sharing one NATS server should give each metering app its own consumer names, or the
    apps split the USAGE and KEYS streams' events between their databases."""
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
    return MeteringSettings(
        env="test",
        database_url=database_url,
        nats_url=nats_url,
        identity_public_key=identity_public_key,
        usage_consumer_name=usage_consumer_name,
        organizations_consumer_name=organizations_consumer_name,
    )
