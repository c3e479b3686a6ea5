"""Named authorization dependencies for the keys service's endpoints."""

import dataclasses
import uuid
from typing import Annotated

from fastapi import Depends

from tollgate_keys.members.repository import MemberRepository
from tollgate_keys.users.service import NoMembershipError
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import ForbiddenError, UnauthorizedError
from tollgate_shared.identity import (
    AnyIdentity,
    Identity,
    OrgIdentity,
    ServiceIdentity,
    read_identity,
)


def principal_uuid(identity: Identity) -> uuid.UUID:
    """The id of the calling user or API key; 401 when the token does not name one."""
    try:
        return uuid.UUID(str(identity.principal_id))
    except ValueError:
        raise UnauthorizedError("The identity token names no valid user or API key.") from None


async def _current_org_principal(identity: OrgIdentity, session: SessionDep) -> Identity:
    """A user or API key of an organisation, named by its id (every org endpoint needs both).

    A user's role is read from their membership now, not from the token: an access token lives
    for 15 minutes, and a removed or demoted admin must lose their rights at once. FastAPI
    caches this per request, so it is one query however many dependencies need it (SessionDep
    is the request's own session). API keys and super admins have no membership to check.
    """
    user_id = principal_uuid(identity)
    if identity.principal_type != "user" or identity.is_super_admin:
        return identity
    assert identity.org_id is not None  # OrgIdentity guarantees it
    role = await MemberRepository(session).role_of(org_id=identity.org_id, user_id=user_id)
    if role is None:
        raise NoMembershipError("You are no longer a member of this organisation.")
    return dataclasses.replace(identity, roles=frozenset({role}))


OrgMember = Annotated[Identity, Depends(_current_org_principal)]


async def _org_admin(identity: OrgMember) -> Identity:
    """An org_admin user, or an API key with the admin scope, of the caller's organisation."""
    allowed = (
        identity.has_role("org_admin")
        if identity.principal_type == "user"
        else identity.has_scope("admin")
    )
    if not allowed:
        raise ForbiddenError("This needs the org_admin role (or an API key with the admin scope).")
    return identity


async def _org_reader(identity: OrgMember) -> Identity:
    """Any member of the organisation, or an API key with the admin scope: who may list the
    organisation's keys and members (the same keys may change them)."""
    if identity.principal_type == "key" and not identity.has_scope("admin"):
        raise ForbiddenError("Reading this with an API key needs the admin scope.")
    return identity


async def _super_admin(identity: Annotated[Identity, Depends(read_identity)]) -> Identity:
    if not identity.is_super_admin:
        raise ForbiddenError("This needs the platform super_admin role.")
    return identity


Anyone = AnyIdentity
OrgAdmin = Annotated[Identity, Depends(_org_admin)]
OrgReader = Annotated[Identity, Depends(_org_reader)]
SuperAdmin = Annotated[Identity, Depends(_super_admin)]
GatewayService = ServiceIdentity
