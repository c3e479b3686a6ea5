"""Test support for suites that run a real billing service."""

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_billing.config import SERVICE, BillingSettings
from tollgate_shared.identity import generate_keypair
from tollgate_shared.migrations import upgrade


def migrated_test_settings(
    *,
    database_url: str,
    nats_url: str,
    identity_public_key: str,
    organizations_consumer_name: str = "billing-organizations",
    metering_url: str = "http://metering.invalid",
    identity_private_key: str | None = None,
) -> BillingSettings:
    """Migrate the billing schema into database_url and return test settings for it.

    Suites sharing one NATS server should give each billing app its own consumer name, or the
    apps split the KEYS stream's events between their databases."""
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
    return BillingSettings(
        env="test",
        database_url=database_url,
        nats_url=nats_url,
        identity_public_key=identity_public_key,
        organizations_consumer_name=organizations_consumer_name,
        metering_url=metering_url,
        identity_private_key=identity_private_key or generate_keypair()[0],
        # Tests close periods themselves, at chosen instants, against their own metering.
        period_close_interval_seconds=3600,
    )
