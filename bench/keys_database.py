"""Writes to the keys service's tables, for what the API does not offer: an organisation's plan
tier (billing will set it), and a rate-limit override on a key created without one.

Gateways read both with the verified key and cache it, so a write reaches a gateway only for
keys it has not verified yet (or after its cache refresh): write before the key's first use.
"""

import uuid

import psycopg
from psycopg.types.json import Jsonb

from tollgate_local.stack import Stack
from tollgate_shared import api_key_format


def set_plan(stack: Stack, organization_id: str, plan: str) -> None:
    _update_one(
        stack,
        "UPDATE keys.organizations SET plan = %s WHERE id = %s",
        (plan, uuid.UUID(organization_id)),
        what=f"organisation {organization_id}",
    )


def set_key_rate_limit(stack: Stack, api_key: str, rate_limit: dict[str, int]) -> None:
    """The key's own limits, as PATCH /v1/keys/{id} would store them."""
    _update_one(
        stack,
        "UPDATE keys.api_keys SET rate_limit = %s WHERE id = "
        "(SELECT key_id FROM keys.api_key_secrets WHERE secret_hash = %s)",
        (Jsonb(rate_limit), api_key_format.hash_key(api_key)),
        what="the API key",
    )


def _update_one(stack: Stack, statement: str, parameters: tuple[object, ...], *, what: str) -> None:
    database_url = stack.processes["keys"].env["TOLLGATE_DATABASE_URL"]
    database_url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(database_url, autocommit=True) as connection:
        updated = connection.execute(statement, parameters).rowcount
    if updated != 1:
        raise RuntimeError(f"{what} not found in the keys database")
