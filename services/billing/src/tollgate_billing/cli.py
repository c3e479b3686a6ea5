"""tollgate-billing migrate | serve | stripe-sync-catalog"""

import asyncio
import sys

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_billing.config import SERVICE, BillingSettings
from tollgate_shared.service_cli import run_service_command

SYNC_CATALOG = "stripe-sync-catalog"


async def sync_catalog_to_stripe(settings: BillingSettings) -> str:
    """Push the catalog to Stripe (stripe_api.catalog); a line saying what was created."""
    from tollgate_billing.stripe_api.catalog import sync_catalog
    from tollgate_billing.stripe_api.client import stripe_client
    from tollgate_shared.database import create_engine, create_sessionmaker

    if not settings.stripe_enabled:
        raise SystemExit(f"{SYNC_CATALOG}: TOLLGATE_BILLING_STRIPE_SECRET_KEY is not set")
    engine = create_engine(settings.database_url, schema=SERVICE)
    try:
        result = await sync_catalog(create_sessionmaker(engine), stripe_client(settings))
    finally:
        await engine.dispose()
    return (
        f"Stripe catalog in sync: {len(result.products_created)} product(s) and "
        f"{len(result.plans_created)} plan(s) created"
        + "".join(f"\n  {created}" for created in result.products_created + result.plans_created)
    )


def main() -> None:
    # The shared command line knows migrate and serve; this one command is billing's own.
    if sys.argv[1:2] == [SYNC_CATALOG]:
        settings = BillingSettings()  # type: ignore[call-arg, unused-ignore]
        print(asyncio.run(sync_catalog_to_stripe(settings)))
        return
    run_service_command(service=SERVICE, default_port=8102, migrations_dir=MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
