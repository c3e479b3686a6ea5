"""The catalog a fresh installation starts with (TOLLGATE_BILLING_CATALOG replaces it)."""

from decimal import Decimal

from tollgate_billing.catalog.schemas import MeteredCharge, PlanCreate, RateLimitTier
from tollgate_billing.pricing.schemes import Package

DEFAULT_CATALOG = [
    PlanCreate(key="free", name="Free", rate_limit_tier=RateLimitTier.FREE),
    PlanCreate(
        key="pro",
        name="Pro",
        monthly_price=Decimal("99.00"),
        yearly_price=Decimal("990.00"),
        trial_days=14,
        rate_limit_tier=RateLimitTier.PRO,
        metered_charges={
            # 1,000,000 requests included, then $0.05 per started 1,000.
            "api_requests": MeteredCharge(
                included_quantity=Decimal(1_000_000),
                pricing=Package(package_size=1000, package_price=Decimal("0.05")),
            )
        },
    ),
    PlanCreate(
        key="enterprise",
        name="Enterprise",
        monthly_price=Decimal("999.00"),
        rate_limit_tier=RateLimitTier.ENTERPRISE,
    ),
]
