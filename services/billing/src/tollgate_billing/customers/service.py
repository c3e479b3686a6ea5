"""The rules for customers: one per organisation, on the default plan to start with."""

import uuid
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog import service as catalog
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.customers.models import Customer
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.customers.schemas import CustomerPublic, CustomerTax
from tollgate_billing.db_types import utcnow
from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.subscriptions.service import start_subscription
from tollgate_shared.errors import NotFoundError

logger = structlog.get_logger(__name__)


class CustomerNotFoundError(NotFoundError):
    slug, title = "customer-not-found", "Customer not found"


class DefaultPlanMissingError(RuntimeError):
    """The default plan is not in the database: the catalog is seeded at start, so this is a
    deployment fault; the event is retried, then kept as a dead letter."""


async def create_customer(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    name: str,
    plan_key: str,
    now: datetime | None = None,
) -> Customer | None:
    """Create the organisation's customer and its subscription (the plan, monthly, active), and
    publish customer.created and subscription.created; None (and no event) when it already has
    one."""
    now = now or utcnow()
    plan = await PlanRepository(session).get(plan_key)
    if plan is None:
        raise DefaultPlanMissingError(f"the default plan '{plan_key}' is not in the catalog")
    customer = await CustomerRepository(session).add_unless_org_has_one(
        Customer(org_id=org_id, name=name, plan_key=plan.key, created_at=now, updated_at=now)
    )
    if customer is None:
        return None
    await publish(
        session,
        BillingEvent.CUSTOMER_CREATED,
        org_id=org_id,
        subject=f"customers/{customer.id}",
        data={
            "customer_id": str(customer.id),
            "organization_id": str(org_id),
            "name": customer.name,
            "plan": plan.key,
            "rate_limit_tier": plan.rate_limit_tier,
        },
    )
    await start_subscription(session, customer=customer, plan=plan, now=now)
    logger.info("customer created", customer_id=str(customer.id), plan=plan.key)
    return customer


async def get_customer(session: AsyncSession, *, org_id: uuid.UUID) -> CustomerPublic:
    customer = await CustomerRepository(session).of_org(org_id)
    if customer is None:
        raise CustomerNotFoundError("This organisation has no billing customer yet.")
    plan = await catalog.get_plan(session, key=customer.plan_key, include_archived=True)
    return CustomerPublic(
        id=customer.id,
        organization_id=customer.org_id,
        name=customer.name,
        plan=catalog.to_public(plan),
        tax_rate=customer.tax_rate,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


async def set_tax_rate(
    session: AsyncSession, *, org_id: uuid.UUID, rate: Decimal | None, now: datetime
) -> CustomerTax:
    """The operator sets (or, with None, removes) the customer's tax rate. It applies to every
    invoice finalized from now on, the running period's included; issued ones keep theirs."""
    repository = CustomerRepository(session)
    customer = await repository.of_org(org_id, for_update=True)
    if customer is None:
        raise CustomerNotFoundError("This organisation has no billing customer yet.")
    # normalize() keeps "19.000" and "19" the same rate; stored exactly.
    customer.tax_rate = None if rate is None else rate.normalize()
    customer.updated_at = now
    session.add(customer)
    await session.flush()
    logger.info("tax rate set", customer_id=str(customer.id), rate=str(customer.tax_rate))
    return CustomerTax(organization_id=org_id, tax_rate=customer.tax_rate)
