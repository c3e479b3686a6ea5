"""May this identity use this route with this method? Scopes for keys, roles for users."""

from tollgate_gateway.errors import MissingRoleError, MissingScopeError
from tollgate_gateway.routing.table import Route
from tollgate_shared.errors import UnauthorizedError
from tollgate_shared.identity import Identity


def authorize(route: Route, identity: Identity, method: str) -> None:
    if route.credential == "public":
        return
    if route.credential == "key" and identity.principal_type != "key":
        raise UnauthorizedError("This route needs an API key.")
    if route.credential == "user" and identity.principal_type != "user":
        raise UnauthorizedError("This route needs a signed-in user.")
    if identity.principal_type == "key":
        needed = route.required_scopes(method)
        if not all(identity.has_scope(scope) for scope in needed):
            raise MissingScopeError(
                f"This API key lacks the scope(s) {', '.join(sorted(needed))} for {method}.",
                required_scopes=sorted(needed),
            )
    if route.roles and not identity.has_role(*route.roles):
        raise MissingRoleError(
            f"This needs one of the roles {', '.join(sorted(route.roles))}.",
            required_roles=sorted(route.roles),
        )
