"""Named authorization dependencies for the metering service's endpoints.

Metering owns no memberships, so a user's role is the one the gateway forwards in the identity
token (taken from the user's access token, which lives 15 minutes): a demoted admin keeps admin
rights here until their access token expires. API keys are judged by their scopes, which the
gateway re-reads from the keys service whenever a key changes.
"""

from typing import Annotated

from fastapi import Depends

from tollgate_shared.errors import ForbiddenError
from tollgate_shared.identity import AnyIdentity, Identity, OrgIdentity


def _user_or_key(identity: Identity, *, role: str | None, scope: str, action: str) -> Identity:
    """Users need the role (any member when None); API keys need the scope (admin covers all)."""
    if identity.principal_type == "user":
        if role is not None and not identity.has_role(role):
            raise ForbiddenError(f"{action} needs the {role} role.")
    elif not identity.has_scope(scope):
        raise ForbiddenError(f"{action} with an API key needs the {scope} scope.")
    return identity


async def _org_reader(identity: OrgIdentity) -> Identity:
    return _user_or_key(identity, role=None, scope="read", action="Reading meters and events")


async def _org_admin(identity: OrgIdentity) -> Identity:
    return _user_or_key(identity, role="org_admin", scope="admin", action="Changing meters")


async def _event_writer(identity: OrgIdentity) -> Identity:
    return _user_or_key(identity, role="org_admin", scope="write", action="Sending usage events")


async def _platform_admin(identity: AnyIdentity) -> Identity:
    """A user with the platform super_admin role (never an API key): the gateway checks the
    role too, this is the service's own guard."""
    if not identity.is_super_admin:
        raise ForbiddenError("This needs the platform super_admin role.")
    return identity


# Any member of the organisation, or an API key with the read scope.
OrgReader = Annotated[Identity, Depends(_org_reader)]
# An org_admin user, or an API key with the admin scope.
OrgAdmin = Annotated[Identity, Depends(_org_admin)]
# An org_admin user, or an API key with the write scope.
EventWriter = Annotated[Identity, Depends(_event_writer)]
# A platform operator (super_admin user), acting across organisations.
PlatformAdmin = Annotated[Identity, Depends(_platform_admin)]
