"""The rules of the catalog: create, list, read, change and archive plans; seed at start."""

from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.catalog.schemas import (
    PRICE_FIELDS,
    MeteredCharge,
    PlanAdminView,
    PlanCreate,
    PlanPublic,
    PlanUpdate,
    RateLimitTier,
    check_fixed_amounts,
    plan_key_or_none,
)
from tollgate_billing.db_types import utcnow
from tollgate_billing.pricing.currencies import minor_digits
from tollgate_shared.errors import ConflictError, NotFoundError, ValidationProblem

logger = structlog.get_logger(__name__)


class PlanNotFoundError(NotFoundError):
    slug, title = "plan-not-found", "Plan not found"


class PlanKeyTakenError(ConflictError):
    slug, title = "plan-key-taken", "Plan key already used"


class PlanHasCustomersError(ConflictError):
    slug, title = "plan-has-customers", "Plan prices are fixed"


class PlanArchivedError(ConflictError):
    slug, title = "plan-archived", "Plan archived"


class DefaultPlanError(ConflictError):
    slug, title = "default-plan", "Default plan"


class InvalidPlanError(ValidationProblem):
    slug, title = "invalid-plan", "Invalid plan"


def _in_currency(amount: Decimal | None, currency: str) -> Decimal | None:
    """A fixed amount with exactly the currency's digits: 99 USD reads "99.00"."""
    if amount is None:
        return None
    return amount.quantize(Decimal(1).scaleb(-minor_digits(currency)))


def to_public(plan: Plan) -> PlanPublic:
    return PlanPublic(
        key=plan.key,
        name=plan.name,
        currency=plan.currency,
        monthly_price=_in_currency(plan.monthly_price, plan.currency),
        yearly_price=_in_currency(plan.yearly_price, plan.currency),
        trial_days=plan.trial_days,
        rate_limit_tier=RateLimitTier(plan.rate_limit_tier),
        metered_charges=metered_charges_of(plan),
        created_at=plan.created_at,
        updated_at=plan.updated_at,
        archived_at=plan.archived_at,
    )


def to_admin_view(plan: Plan, customers: int) -> PlanAdminView:
    return PlanAdminView(**to_public(plan).model_dump(), customers=customers)


def metered_charges_of(plan: Plan) -> dict[str, MeteredCharge]:
    return {
        meter: MeteredCharge.model_validate(charge)
        for meter, charge in plan.metered_charges.items()
    }


def _stored_charges(charges: dict[str, MeteredCharge]) -> dict[str, Any]:
    # JSON mode writes Decimals as strings, so the stored prices stay exact.
    return {meter: charge.model_dump(mode="json") for meter, charge in charges.items()}


def _new_plan(data: PlanCreate) -> Plan:
    now = utcnow()
    return Plan(
        key=data.key,
        name=data.name,
        currency=data.currency,
        monthly_price=data.monthly_price,
        yearly_price=data.yearly_price,
        trial_days=data.trial_days,
        rate_limit_tier=data.rate_limit_tier.value,
        metered_charges=_stored_charges(data.metered_charges),
        created_at=now,
        updated_at=now,
    )


async def create_plan(session: AsyncSession, *, data: PlanCreate) -> PlanAdminView:
    created = await PlanRepository(session).add_unless_key_taken(_new_plan(data))
    if created is None:
        raise PlanKeyTakenError(
            f"A plan '{data.key}' already exists (archived ones included: a key is never "
            "reused, so a customer's plan always means one thing)."
        )
    return to_admin_view(created, customers=0)


async def seed_catalog(session: AsyncSession, *, catalog: list[PlanCreate]) -> list[str]:
    """Create the catalog's plans that do not exist yet; returns the keys created. A plan the
    operator changed or archived keeps its changes."""
    repository = PlanRepository(session)
    created = [
        plan.key
        for data in catalog
        if (plan := await repository.add_unless_key_taken(_new_plan(data))) is not None
    ]
    if created:
        logger.info("catalog plans created", plans=created)
    return created


async def list_plans(session: AsyncSession, *, include_archived: bool) -> list[Plan]:
    return list(await PlanRepository(session).list(include_archived=include_archived))


async def list_admin_views(session: AsyncSession, *, include_archived: bool) -> list[PlanAdminView]:
    repository = PlanRepository(session)
    plans = await repository.list(include_archived=include_archived)
    counts = await repository.customer_counts([plan.key for plan in plans])
    return [to_admin_view(plan, counts[plan.key]) for plan in plans]


async def get_plan(
    session: AsyncSession, *, key: str, include_archived: bool, for_update: bool = False
) -> Plan:
    valid_key = plan_key_or_none(key)
    plan = (
        await PlanRepository(session).get(valid_key, for_update=for_update) if valid_key else None
    )
    if plan is None or (plan.archived_at is not None and not include_archived):
        raise PlanNotFoundError(f"No plan '{key}' in the catalog.")
    return plan


async def admin_view(session: AsyncSession, *, plan: Plan) -> PlanAdminView:
    counts = await PlanRepository(session).customer_counts([plan.key])
    return to_admin_view(plan, counts[plan.key])


async def update_plan(session: AsyncSession, *, plan: Plan, changes: PlanUpdate) -> PlanAdminView:
    """Prices (currency, fees, metered charges) change only while no customer is on the plan:
    customers keep what they signed up for; sell new prices as a new plan."""
    if plan.archived_at is not None:
        raise PlanArchivedError(f"The plan '{plan.key}' is archived and cannot be changed.")
    wanted = changes.model_dump(exclude_unset=True)
    if "metered_charges" in wanted:
        wanted["metered_charges"] = _stored_charges(changes.metered_charges or {})
    if "rate_limit_tier" in wanted:
        wanted["rate_limit_tier"] = wanted["rate_limit_tier"].value
    changed = {name: value for name, value in wanted.items() if getattr(plan, name) != value}
    if not changed:
        return await admin_view(session, plan=plan)
    customers = (await PlanRepository(session).customer_counts([plan.key]))[plan.key]
    if customers and PRICE_FIELDS & changed.keys():
        raise PlanHasCustomersError(
            f"{customers} customer(s) are on the plan '{plan.key}', so its prices are fixed. "
            "Create a plan with the new prices and archive this one.",
            fields=sorted(PRICE_FIELDS & changed.keys()),
        )
    _check_combined(plan, changed)
    for name, value in changed.items():
        setattr(plan, name, value)
    plan.updated_at = utcnow()
    await PlanRepository(session).save(plan)
    return to_admin_view(plan, customers)


def _check_combined(plan: Plan, changed: dict[str, Any]) -> None:
    """A new currency must suit the plan's kept amounts too (and new amounts the currency)."""
    currency = changed.get("currency", plan.currency)
    charges = changed.get("metered_charges", plan.metered_charges)
    try:
        check_fixed_amounts(
            currency,
            monthly_price=changed.get("monthly_price", plan.monthly_price),
            yearly_price=changed.get("yearly_price", plan.yearly_price),
            metered_charges={
                meter: MeteredCharge.model_validate(charge) for meter, charge in charges.items()
            },
        )
    except ValueError as error:
        message = str(error)
        raise InvalidPlanError(
            message, errors=[{"loc": ["body"], "message": message, "type": "value_error"}]
        ) from None


async def archive_plan(session: AsyncSession, *, plan: Plan, default_plan: str) -> PlanAdminView:
    """Archived plans take no new customers; their customers stay on them. Archiving twice
    changes nothing. The default plan cannot be archived: every new customer starts on it."""
    if plan.key == default_plan:
        raise DefaultPlanError(
            f"'{plan.key}' is the plan every new customer starts on "
            "(TOLLGATE_BILLING_DEFAULT_PLAN) and cannot be archived."
        )
    if plan.archived_at is None:
        plan.archived_at = plan.updated_at = utcnow()
        await PlanRepository(session).save(plan)
    return await admin_view(session, plan=plan)
