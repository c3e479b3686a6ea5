import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_keys.events import KeysEvent, publish
from tollgate_keys.organizations.models import Organization
from tollgate_keys.organizations.repository import OrganizationRepository
from tollgate_shared.errors import NotFoundError
from tollgate_shared.pagination import Page, PageParams, split_page

logger = structlog.get_logger(__name__)


class OrganizationNotFoundError(NotFoundError):
    slug, title = "organization-not-found", "Organisation not found"


async def get_organization(session: AsyncSession, *, org_id: uuid.UUID) -> Organization:
    organization = await OrganizationRepository(session).get(org_id)
    if organization is None:
        raise OrganizationNotFoundError()
    return organization


async def create_organization(
    session: AsyncSession,
    *,
    name: str,
    created_by: uuid.UUID,
    organization_id: uuid.UUID | None = None,
) -> Organization:
    organization = await OrganizationRepository(session).add(
        Organization(id=organization_id or uuid.uuid4(), name=name)
    )
    await publish(
        session,
        KeysEvent.ORGANIZATION_CREATED,
        org_id=organization.id,
        data={**_event_data(organization), "created_by_user_id": str(created_by)},
    )
    return organization


async def rename_organization(
    session: AsyncSession, *, organization: Organization, name: str
) -> Organization:
    if organization.name == name:
        return organization
    organization.name = name
    session.add(organization)
    await session.flush()
    await publish(
        session,
        KeysEvent.ORGANIZATION_UPDATED,
        org_id=organization.id,
        data=_event_data(organization),
    )
    return organization


async def follow_billing_subscription(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    plan: str,
    suspended: bool | None,
    version: int,
) -> bool:
    """Take the plan tier and suspension of the organisation's billing subscription at
    `version`, unless a newer one was taken (events may come late or twice); `suspended` None
    (an event without a status) leaves the suspension as it is. Publishes organization.updated
    when either changed, which metering and the gateway follow; returns whether one did."""
    organization = await OrganizationRepository(session).get_for_update(org_id)
    if organization is None:
        # Billing's orgs are made from ours, so this is another installation's event on a
        # shared NATS (tests), or an org since removed: nothing to follow.
        logger.info("subscription of an unknown organisation ignored", org_id=str(org_id))
        return False
    if version <= organization.plan_version:
        return False
    if suspended is None:
        suspended = organization.suspended
    changed = (organization.plan, organization.suspended) != (plan, suspended)
    organization.plan, organization.suspended = plan, suspended
    organization.plan_version = version
    session.add(organization)
    await session.flush()
    if changed:
        await publish(
            session,
            KeysEvent.ORGANIZATION_UPDATED,
            org_id=organization.id,
            data=_event_data(organization),
        )
        logger.info(
            "organisation's subscription changed",
            org_id=str(org_id),
            plan=plan,
            suspended=suspended,
            version=version,
        )
    return changed


async def list_organizations(session: AsyncSession, *, page: PageParams) -> Page[Organization]:
    rows = await OrganizationRepository(session).list_page(page)
    organizations, next_cursor = split_page(rows, page, lambda org: (org.created_at, org.id))
    return Page(items=organizations, next_cursor=next_cursor)


def _event_data(organization: Organization) -> dict[str, object]:
    """What organization.created and organization.updated carry."""
    return {
        "organization_id": str(organization.id),
        "name": organization.name,
        "plan": organization.plan,
        "suspended": organization.suspended,
    }
