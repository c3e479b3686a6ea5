"""Named authorization dependencies for the billing service's endpoints.

The catalog is the operator's, shared by every organisation, so changing it needs the platform
super_admin role. The billing_admin role is an organisation's own (any org_admin may grant it in
their organisation), so it never reaches the catalog: it is for the organisation's own billing.
"""

from typing import Annotated

from fastapi import Depends

from tollgate_shared.errors import ForbiddenError
from tollgate_shared.identity import AnyIdentity, Identity, OrgIdentity


async def _org_reader(identity: OrgIdentity) -> Identity:
    """Any member of the organisation; an API key needs the read scope (admin covers all)."""
    if identity.principal_type == "key" and not identity.has_scope("read"):
        raise ForbiddenError("Reading billing with an API key needs the read scope.")
    return identity


async def _billing_admin(identity: OrgIdentity) -> Identity:
    """Who may change the organisation's subscription: an org_admin or billing_admin user, or
    an API key with the admin scope. Roles come from the identity token (the keys service
    owns memberships; an access token lives at most 15 minutes)."""
    allowed = (
        identity.has_role("org_admin", "billing_admin")
        if identity.principal_type == "user"
        else identity.has_scope("admin")
    )
    if not allowed:
        raise ForbiddenError(
            "Changing the subscription needs the org_admin or billing_admin role "
            "(or an API key with the admin scope)."
        )
    return identity


async def _catalog_admin(identity: AnyIdentity) -> Identity:
    """A user with the platform super_admin role (never an API key): the gateway checks the
    role too, this is the service's own guard."""
    if not identity.is_super_admin:
        raise ForbiddenError("Managing the plan catalog needs the platform super_admin role.")
    return identity


# Any member of the organisation, or an API key with the read scope.
OrgReader = Annotated[Identity, Depends(_org_reader)]
# An org_admin or billing_admin user, or an API key with the admin scope.
BillingAdmin = Annotated[Identity, Depends(_billing_admin)]
# A platform operator (super_admin user), managing the plans every organisation may buy.
CatalogAdmin = Annotated[Identity, Depends(_catalog_admin)]
