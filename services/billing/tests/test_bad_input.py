"""Bad input on every billing endpoint: a clear RFC 9457 problem (4xx), never a 5xx.

The routes come from the app's OpenAPI, so a new endpoint is swept as soon as it exists; the
rules below say who may call a route (its auth dependency), which bad values each path, query
and header parameter gets, and a valid body of each request schema to spoil field by field. A
route, parameter or schema no rule covers fails test_every_route_is_covered_by_a_rule."""

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from tollgate_billing.app import create_app
from tollgate_billing.auth import BillingAdmin, CatalogAdmin, OrgReader
from tollgate_billing.config import BillingSettings
from tollgate_billing.invoices.endpoints import Metering
from tollgate_billing.stripe_api.endpoints import StripeDep
from tollgate_shared.errors import PROBLEM_JSON
from tollgate_shared.identity import (
    IDENTITY_HEADER,
    Identity,
    generate_keypair,
    identity_signer,
)

from .conftest import WEBHOOK_PATH, LocalStripe, Org, add_customer
from .payment_helpers import open_invoice


def _dependency_of(annotated: Any) -> Callable[..., Any]:
    """The function behind a named dependency type (OrgReader -> _org_reader)."""
    call: Callable[..., Any] = annotated.__metadata__[0].dependency
    return call


# Who may reach a route, by the auth dependency it declares: the caller the sweep sends its
# bad input as, and callers of the wrong kind (each must get 401 or 403).
ORG_READER, BILLING_ADMIN, CATALOG_ADMIN = (
    _dependency_of(OrgReader),
    _dependency_of(BillingAdmin),
    _dependency_of(CatalogAdmin),
)
STRIPE = _dependency_of(StripeDep)
METERING = _dependency_of(Metering)
AUTH_RULES: dict[Callable[..., Any], tuple[str, tuple[str, ...]]] = {
    ORG_READER: ("member", ("key without scopes", "operator", "service", "user of no org")),
    BILLING_ADMIN: ("org_admin", ("member", "read key", "operator", "service")),
    CATALOG_ADMIN: ("operator", ("org_admin", "billing_admin", "admin key", "service")),
}
# Routes without an identity: what replaces it.
PUBLIC_ROUTES = {
    ("GET", "/healthz"): "no input",
    ("GET", "/readyz"): "no input",
    ("POST", WEBHOOK_PATH): "stripe signature",
}
# Routes that talk to Stripe (their handler, or a dependency): swept on the Stripe app too.
STRIPE_ROUTES = {
    ("POST", "/v1/billing/payment-method/checkout"),
    ("POST", "/v1/onboarding/payment-method"),
}

UNKNOWN_UUID = "7d9f4b4e-0000-4000-8000-000000000000"
LONG = "x" * 5000
NOT_UUIDS = [
    "not-a-uuid",
    "1",
    "0" * 37,
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    LONG,
    "é€😀",
    "\x00",
]
NOT_KEYS = [LONG, "é€😀", "UPPER", "a b", "\x00", "nope-no-such-thing", "-1"]
# Bad values of each path parameter; {other_org_invoice} and {other_org} are filled per test.
PATH_RULES: dict[str, list[str]] = {
    "invoice_id": [*NOT_UUIDS, UNKNOWN_UUID, "{other_org_invoice}"],
    "org_id": [*NOT_UUIDS, UNKNOWN_UUID, "{other_org}"],
    "key": NOT_KEYS,
    "code": NOT_KEYS,
}
# A valid value of each path parameter, for the cases that spoil something else.
PATH_VALID = {
    "invoice_id": "{invoice}",
    "org_id": "{org}",
    "key": "enterprise",
    "code": "NO-SUCH-CODE",
}
NOT_INTEGERS = ["0", "-1", "101", "all", "1.5", str(10**30), "1e400", "NaN", "", LONG, "\x00"]


def cursor_of(moment: Any, id_: Any = UNKNOWN_UUID) -> str:
    """A cursor as the API writes them, of any time and id."""
    raw = json.dumps({"t": moment, "i": id_}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


NOT_CURSORS = [
    "a" * 201,
    "!!!",
    "é€",
    "\x00",
    "bm90IGpzb24",  # not JSON
    "W1sxLCAyXV0",  # a list
    "e30",  # {}
    LONG,
    # Well-formed, of times at the calendar's ends, without a zone, and ids that are not ids.
    cursor_of("9999-12-31T23:59:59-14:00"),
    cursor_of("0001-01-01T00:00:00+14:00"),
    cursor_of("2026-01-01T00:00:00"),
    cursor_of("2026-01-01"),
    cursor_of(None),
    cursor_of(10**30),
    cursor_of("2026-01-01T00:00:00+00:00", "\x00"),
    cursor_of("2026-01-01T00:00:00+00:00", 10**30),
]
NOT_BOOLEANS = ["maybe", "2", "-1", "", LONG, "\x00"]
NOT_ENUMS = ["nope", "", "PAID", LONG, "\x00", "é"]
NOT_MONTHS = [
    "2026-13",
    "2026-00",
    "0000-01",
    "0001-01",
    "9999-12",
    "2026-1",
    "2026-01-01",
    LONG,
    "\x00",
]
NOT_TIMES = [
    "yesterday",
    "2026-01-01T00:00:00",  # no time zone
    "2026-13-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
    "-1",
    "1e400",
    str(10**30),
    LONG,
    "\x00",
]
# Bad values of each query and header parameter, and valid ones for the required.
QUERY_RULES: dict[str, list[str]] = {
    "limit": NOT_INTEGERS,
    "cursor": NOT_CURSORS,
    "include_archived": NOT_BOOLEANS,
    "organization_id": [*NOT_UUIDS, UNKNOWN_UUID],
    "period_start": NOT_TIMES,
    "plan": ["p" * 64, "\x00", "é€😀", LONG],
    "status": NOT_ENUMS,
    "state": NOT_ENUMS,
    "outcome": NOT_ENUMS,
    "invoice_state": NOT_ENUMS,
    "from": NOT_MONTHS,
    "to": NOT_MONTHS,
}
QUERY_VALID = {"organization_id": "{org}", "period_start": "2020-01-01T00:00:00Z"}
HEADER_RULES: dict[str, list[str]] = {
    "if-match": ["garbage", '"-1"', f'"{10**30}"', 'W/"1"', '"1.5"', '""', LONG, "*"],
    "stripe-signature": [],  # the Stripe signature cases below
}
# Valid bodies of each request schema (one per way to fill it), spoiled one top-level field at
# a time.
BODY_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "PlanCreate": [
        {
            "key": "sweep-plan",
            "name": "Sweep",
            "currency": "USD",
            "monthly_price": "10.00",
            "yearly_price": "100.00",
            "trial_days": 7,
            "rate_limit_tier": "pro",
            "metered_charges": {
                "api_requests": {
                    "included_quantity": "1000",
                    "pricing": {
                        "model": "graduated",
                        "tiers": [
                            {"up_to": "10000", "unit_price": "0.001", "flat_fee": "1.00"},
                            {"up_to": None, "unit_price": "0.0005"},
                        ],
                    },
                }
            },
        },
        {
            "key": "sweep-package",
            "name": "Sweep package",
            "currency": "JPY",
            "monthly_price": "1000",
            "metered_charges": {
                "api_requests": {
                    "pricing": {"model": "package", "package_size": 1000, "package_price": "5"}
                }
            },
        },
    ],
    "PlanUpdate": [
        {"name": "Enterprise plus", "trial_days": 14, "monthly_price": "500.00"},
        {"yearly_price": None, "rate_limit_tier": "pro", "currency": "EUR"},
        {
            "metered_charges": {
                "api_requests": {"pricing": {"model": "per_unit", "unit_price": "0.01"}}
            }
        },
    ],
    "TaxRateSet": [{"rate": "19"}, {"rate": None}],
    "SubscriptionChange": [
        {"plan": "pro", "interval": "month", "at": "now"},
        {"plan": "enterprise", "interval": "year", "at": "period_end"},
    ],
    "SubscriptionCancel": [{"at": "period_end"}, {"at": "now"}],
    "DiscountRedeem": [{"code": "SWEEP10"}],
    "DiscountCreate": [
        {
            "code": "SWEEP10",
            "percent": "10",
            "duration": "repeating",
            "periods": 3,
            "expires_at": "2099-01-01T00:00:00Z",
            "max_redemptions": 5,
            "plans": ["pro"],
        },
        {"code": "SWEEP5", "amount_off": 500, "currency": "USD", "duration": "once"},
    ],
    "LedgerCard": [{"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030}],
    "PlanChoice": [
        {"plan": "pro", "interval": "month", "discount_code": "SWEEP10"},
        {"plan": "enterprise", "interval": "year"},
    ],
}
# JSON text of spoiled values (some are not what json.dumps writes: 1e400, deep nesting).
DEEP = "[" * 5000 + "]" * 5000
FIELD_VALUES = {
    "null": "null",
    "a list": "[]",
    "an object": "{}",
    "1e400": "1e400",
    "10**30": str(10**30),
    "-10**30": str(-(10**30)),
    "-1": "-1",
    "1.5": "1.5",
    "NaN": '"NaN"',
    "Infinity": '"Infinity"',
    "1e400 string": '"1e400"',
    "a long string": json.dumps("s" * 20_000),
    "NUL": '"a\\u0000b"',
    "a lone surrogate": '"\\ud800"',
    "deep nesting": DEEP,
}
NESTED_FIELD_VALUES = ("null", "an object", "1e400", "10**30", "-1", "NaN", "NUL", "deep nesting")
PLACEHOLDER = "__SWEEP_VALUE__"

# Stripe events with junk of each handled type (signed: only the body is bad).
WEBHOOK_TYPES = [
    "invoice.paid",
    "invoice.payment_failed",
    "checkout.session.completed",
    "customer.subscription.deleted",
    "no.such.type",
]
JUNK_OBJECT_IDS: list[Any] = [LONG, "\x00", "../../v1/customers", "é€😀", 12, None, "", "in_ x"]
JUNK_SNAPSHOTS: dict[str, dict[str, Any]] = {
    "metadata a list": {"metadata": ["x"], "customer": "cus_x"},
    "metadata a string": {"metadata": "x", "customer": "cus_x"},
    "metadata a number": {"metadata": 5, "customer": "cus_x"},
    "org id a number": {"metadata": {"tollgate_org_id": 5}, "customer": "cus_x"},
    "org id with a NUL": {"metadata": {"tollgate_org_id": "\x00"}, "customer": "cus_x"},
    "customer with a NUL": {"metadata": {"tollgate_org_id": UNKNOWN_UUID}, "customer": "\x00"},
    "customer too long": {"metadata": {"tollgate_org_id": UNKNOWN_UUID}, "customer": LONG},
    "customer an object": {"metadata": {"tollgate_org_id": UNKNOWN_UUID}, "customer": {}},
}
JUNK_EVENT_IDS: list[Any] = ["\x00", "é€😀", "evt_" + "x" * 251, "evt_" + "x" * 300, 12, ""]


@dataclass
class Case:
    name: str
    method: str
    path: str
    caller: str | None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    content_type: str = "application/json"
    # Must be refused (a 4xx): wrong credentials, a body that cannot be the schema.
    refused: bool = False
    signed: bool = False  # sign the body as Stripe does


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation: dict[str, Any]
    auth: Callable[..., Any] | None
    uses_stripe: bool
    uses_metering: bool

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.operation.get("parameters", []) if p["in"] == where]

    def body_schema(self) -> str | None:
        content = self.operation.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            return None
        refs = [schema, *schema.get("anyOf", [])]
        names = [ref["$ref"].rsplit("/", 1)[1] for ref in refs if "$ref" in ref]
        # A body of no named model has no example: uncovered() reports it.
        return names[0] if len(names) == 1 else f"unnamed {json.dumps(schema)}"


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependencies(dependency)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The app's APIRoutes, also inside included routers (FastAPI >= 0.160 keeps an included
    router whole: its routes are not copied into the app's). A route found nowhere has no
    auth dependency here, which test_every_route_is_covered_by_a_rule reports."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def routes_of(app: FastAPI) -> list[Route]:
    """Every operation of the app's OpenAPI, with the auth dependency of its route."""
    calls = {
        (method, route.path_format): list(_dependencies(route.dependant))
        for route in _api_routes(app.routes)
        for method in route.methods
    }
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            dependencies = calls.get((method.upper(), path), [])
            # Two different auth dependencies: no rule says which wins, so none is taken.
            auth = {call for call in dependencies if call in AUTH_RULES}
            routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    operation=operation,
                    auth=auth.pop() if len(auth) == 1 else None,
                    uses_stripe=STRIPE in dependencies,
                    uses_metering=METERING in dependencies,
                )
            )
    return routes


def _app_for_openapi() -> FastAPI:
    """An app never started (no connection is made): only its routes and OpenAPI are read."""
    private, public = generate_keypair()
    return create_app(
        BillingSettings(
            env="test",
            database_url="postgresql://sweep@127.0.0.1:1/sweep",
            nats_url="nats://127.0.0.1:1",
            identity_public_key=public,
            identity_private_key=private,
            metering_url="http://metering.invalid",
        )
    )


ROUTES = routes_of(_app_for_openapi())


def uncovered(route: Route) -> list[str]:
    """What of the route no rule covers."""
    missing = []
    if route.auth is None and (route.method, route.path) not in PUBLIC_ROUTES:
        missing.append("who may call it (an auth dependency of AUTH_RULES, or PUBLIC_ROUTES)")
    for parameter in route.parameters("path"):
        if parameter["name"] not in PATH_RULES or parameter["name"] not in PATH_VALID:
            missing.append(f"path parameter {parameter['name']} (PATH_RULES, PATH_VALID)")
    for parameter in route.parameters("query"):
        if parameter["name"] not in QUERY_RULES:
            missing.append(f"query parameter {parameter['name']} (QUERY_RULES)")
        elif parameter.get("required") and parameter["name"] not in QUERY_VALID:
            missing.append(f"required query parameter {parameter['name']} (QUERY_VALID)")
    for parameter in route.parameters("header"):
        if parameter["name"] not in HEADER_RULES:
            missing.append(f"header {parameter['name']} (HEADER_RULES)")
    for parameter in route.parameters("cookie"):
        missing.append(f"cookie {parameter['name']}")
    schema = route.body_schema()
    if schema is not None and schema not in BODY_EXAMPLES:
        missing.append(f"request body {schema} (BODY_EXAMPLES)")
    return missing


def test_every_route_is_covered_by_a_rule() -> None:
    assert len(ROUTES) > 40
    missing = {route.id: uncovered(route) for route in ROUTES if uncovered(route)}
    assert not missing, f"routes the bad-input sweep does not cover: {missing}"
    # What the rules find by dependency is found (or every route would look public).
    stripe_routes = {(route.method, route.path) for route in ROUTES if route.uses_stripe}
    assert ("POST", WEBHOOK_PATH) in stripe_routes
    assert any(route.uses_metering for route in ROUTES)
    assert {(route.method, route.path) for route in ROUTES} >= STRIPE_ROUTES


def test_a_new_route_no_rule_covers_is_reported() -> None:
    app = _app_for_openapi()

    @app.post("/v1/billing/new-thing/{thing_id}")
    async def new_thing(
        thing_id: str, identity: OrgReader, colour: str, body: dict[str, int]
    ) -> None: ...

    @app.get("/v1/billing/open-thing")
    async def open_thing() -> None: ...

    routes = {route.id: route for route in routes_of(app)}
    assert uncovered(routes["POST /v1/billing/new-thing/{thing_id}"]) == [
        "path parameter thing_id (PATH_RULES, PATH_VALID)",
        "query parameter colour (QUERY_RULES)",
        'request body unnamed {"type": "object", "additionalProperties": {"type": "integer"}, '
        '"title": "Body"} (BODY_EXAMPLES)',
    ]
    assert uncovered(routes["GET /v1/billing/open-thing"]) == [
        "who may call it (an auth dependency of AUTH_RULES, or PUBLIC_ROUTES)"
    ]


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every value inside a body (objects and lists, and what they hold)."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        yield (*path, key)
        if isinstance(inner, dict | list):
            yield from _paths(inner, (*path, key))


def _replaced(value: Any, path: tuple[str | int, ...], by: Any) -> Any:
    if not path:
        return by
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], by)  # type: ignore[index]
    return copy


def _raw_body(example: dict[str, Any], path: tuple[str | int, ...], value: str) -> bytes:
    text = json.dumps(_replaced(example, path, PLACEHOLDER))
    return text.replace(json.dumps(PLACEHOLDER), value).encode()


def _whole_bodies(
    example: dict[str, Any] | None, *, required: bool = True
) -> list[tuple[str, bytes, str, bool]]:
    """(name, body, content type, refused) of bodies wrong as a whole (no body, or null, is
    right where the body is optional)."""
    bodies = [
        ("body not JSON", b"{oops", "application/json", True),
        ("body empty", b"", "application/json", example is not None and required),
        ("body a list", b"[]", "application/json", True),
        ("body a string", b'"x"', "application/json", True),
        ("body a number", b"1", "application/json", True),
        ("body a huge number", b"1e400", "application/json", True),
        ("body null", b"null", "application/json", example is not None and required),
        ("body deeply nested", DEEP.encode(), "application/json", True),
        (
            "body deeply nested objects",
            b'{"a":' * 5000 + b"1" + b"}" * 5000,
            "application/json",
            True,
        ),
        ("body not UTF-8", b'{"x": "\xff\xfe"}', "application/json", True),
        ("body form encoded", b"a=1&b=2", "application/x-www-form-urlencoded", True),
        ("body a megabyte", json.dumps({"x": "y" * 1_000_000}).encode(), "application/json", True),
    ]
    if example is not None:
        bodies += [
            ("body an empty object", b"{}", "application/json", False),
            (
                "body with an unknown field",
                json.dumps({**example, "unknown_field": 1}).encode(),
                "application/json",
                False,
            ),
            # A valid body under other content types.
            ("body as text/plain", json.dumps(example).encode(), "text/plain", False),
            (
                "body in UTF-16",
                json.dumps(example).encode("utf-16"),
                "application/json; charset=utf-16",
                False,
            ),
            ("body with a made-up type", json.dumps(example).encode(), "application/x\x7f", False),
        ]
    return bodies


def cases_for(route: Route, allowed: str | None, wrong: tuple[str, ...]) -> list[Case]:
    """Every bad request of the route (path templates still to be filled)."""
    method = route.method
    valid_path = route.path
    for parameter in route.parameters("path"):
        valid_path = valid_path.replace(
            "{" + parameter["name"] + "}", PATH_VALID[parameter["name"]]
        )
    valid_query = {
        p["name"]: QUERY_VALID[p["name"]] for p in route.parameters("query") if p.get("required")
    }
    schema = route.body_schema()
    examples = BODY_EXAMPLES[schema] if schema is not None else []
    example = examples[0] if examples else None
    valid_body = json.dumps(example).encode() if example is not None else None

    def case(name: str, **changes: Any) -> Case:
        fields: dict[str, Any] = {
            "method": method,
            "path": valid_path,
            "caller": allowed,
            "params": dict(valid_query),
            "content": valid_body,
        }
        fields.update(changes)
        return Case(name=name, **fields)

    cases: list[Case] = []
    if (method, route.path) == ("POST", WEBHOOK_PATH):
        return webhook_cases(route)
    if PUBLIC_ROUTES.get((method, route.path)) == "no input":
        return [
            case("junk query", params={"x": LONG}),
            case("junk body", content=b"{oops"),
        ]
    # Credentials: none, unreadable, expired, and callers of the wrong kind.
    cases += [case(f"as {who}", caller=who, refused=True) for who in ABSENT_CALLERS]
    cases += [case(f"as {who}", caller=who, refused=True) for who in wrong]
    # Parameters no route has are ignored: the route runs as it would without them.
    cases.append(
        case("unknown query parameters", params={**valid_query, "unknown": LONG, "é": "\x00"})
    )
    if allowed in STRANGERS:
        # Allowed, but of an organisation billing has no customer for (yet).
        cases.append(case(f"as {allowed} of an unknown organisation", caller=STRANGERS[allowed]))
    for parameter in route.parameters("path"):
        name = parameter["name"]
        for value in PATH_RULES[name]:
            path = route.path.replace("{" + name + "}", _path_segment(value))
            for other in route.parameters("path"):
                if other["name"] != name:
                    path = path.replace("{" + other["name"] + "}", PATH_VALID[other["name"]])
            # An operator may act on any organisation's objects.
            refused = not (allowed == "operator" and value.startswith("{other"))
            cases.append(case(f"path {name}={value[:40]!r}", path=path, refused=refused))
    for parameter in route.parameters("query"):
        name = parameter["name"]
        for value in QUERY_RULES[name]:
            cases.append(case(f"query {name}={value[:40]!r}", params={**valid_query, name: value}))
    if route.parameters("query"):
        cases.append(case("query repeated", params=None, path=f"{valid_path}?limit=1&limit=2"))
    for parameter in route.parameters("header"):
        name = parameter["name"]
        for value in HEADER_RULES[name]:
            cases.append(case(f"header {name}={value[:40]!r}", headers={name: value}))
    if example is not None or route.operation.get("requestBody") is not None:
        required = route.operation.get("requestBody", {}).get("required", False)
        for name, body, content_type, refused in _whole_bodies(example, required=required):
            cases.append(case(name, content=body, content_type=content_type, refused=refused))
    for number, valid in enumerate(examples):
        for path in _paths(valid):
            # Every value of the top-level fields; fewer deeper (their types are checked alike).
            values = FIELD_VALUES if len(path) == 1 else NESTED_FIELD_VALUES
            where = ".".join(map(str, path))
            for value_name in values:
                cases.append(
                    case(
                        f"body {number} {where}={value_name}",
                        content=_raw_body(valid, path, FIELD_VALUES[value_name]),
                    )
                )
    return cases


def webhook_cases(route: Route) -> list[Case]:
    """Stripe's webhook: its credential is the Stripe-Signature of the raw body."""
    event = {"id": "evt_sweep", "type": "no.such.type", "data": {"object": {"id": "x"}}}
    good = json.dumps(event).encode()

    def case(name: str, **changes: Any) -> Case:
        fields: dict[str, Any] = {
            "method": route.method,
            "path": route.path,
            "caller": None,
            "content": good,
            "signed": True,
        }
        fields.update(changes)
        return Case(name=name, **fields)

    cases = [
        case("no signature", signed=False, refused=True),
        case("an identity instead of a signature", signed=False, caller="org_admin", refused=True),
        *[
            case(
                f"signature {value[:40]!r}",
                signed=False,
                headers={"stripe-signature": value},
                refused=True,
            )
            for value in ["garbage", "t=1,v1=00", "t=abc,v1=", "t=" + "9" * 40 + ",v1=x", LONG]
        ],
    ]
    for name, body, content_type, _refused in _whole_bodies(None):
        cases.append(case(f"signed {name}", content=body, content_type=content_type, refused=True))
    for name, body in [
        ("signed empty object", b"{}"),
        ("signed event without data", b'{"id": "evt_sweep", "type": "invoice.paid"}'),
        ("signed data a list", b'{"id": "evt_sweep", "type": "invoice.paid", "data": []}'),
        ("signed id a number", b'{"id": 1e400, "type": "invoice.paid", "data": {}}'),
    ]:
        cases.append(case(name, content=body, refused=True))
    for type_ in WEBHOOK_TYPES:
        for object_id in JUNK_OBJECT_IDS:
            body = {
                "id": f"evt_sweep_{uuid.uuid4().hex}",
                "type": type_,
                "data": {"object": {"id": object_id, "customer": object_id, "metadata": []}},
            }
            cases.append(
                case(
                    f"signed {type_} of object {str(object_id)[:30]!r}",
                    content=json.dumps(body).encode(),
                )
            )
        # The event's own snapshot is what is read of an object gone from Stripe.
        for snapshot_name, snapshot in JUNK_SNAPSHOTS.items():
            body = {
                "id": f"evt_sweep_{uuid.uuid4().hex}",
                "type": type_,
                "data": {"object": {"id": "sub_gone", **snapshot}},
            }
            cases.append(
                case(f"signed {type_} with {snapshot_name}", content=json.dumps(body).encode())
            )
        cases.append(
            case(
                f"signed {type_} of an object that is a list",
                content=json.dumps(
                    {"id": f"evt_{uuid.uuid4().hex}", "type": type_, "data": {"object": []}}
                ).encode(),
            )
        )
    for event_id in JUNK_EVENT_IDS:
        body = {"id": event_id, "type": "no.such.type", "data": {"object": {}}}
        cases.append(
            case(f"signed event id {str(event_id)[:30]!r}", content=json.dumps(body).encode())
        )
    cases.append(
        case("signed type with a NUL", content=json.dumps({**event, "type": "a\x00"}).encode())
    )
    cases.append(
        case(
            "signed type too long",
            content=json.dumps({**event, "type": "t" * 101}).encode(),
            refused=True,
        )
    )
    return cases


def _path_segment(value: str) -> str:
    # httpx encodes the rest, but refuses a NUL; a "%" would be a bad escape.
    return value.replace("%", "%25").replace("\x00", "%00")


ABSENT_CALLERS = (
    "nobody",
    "garbage token",
    "huge token",
    "token of another signer",
    "expired token",
)
STRANGERS = {"member": "stranger member", "org_admin": "stranger org_admin"}


@dataclass
class Sweep:
    """What the sweep needs of one test: callers' headers and ids to fill the paths with."""

    callers: dict[str, dict[str, str]]
    ids: dict[str, str]

    def fill(self, text: str) -> str:
        for name, value in self.ids.items():
            text = text.replace("{" + name + "}", value)
        return text


def callers_of(
    acme: Org, mint: Callable[..., dict[str, str]], operator: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Headers of every caller the rules name, as the gateway forwards them."""
    expired = mint(
        "user",
        principal_id=str(uuid.uuid4()),
        org_id=acme.org_id,
        roles=("org_admin",),
        ttl_seconds=-300,
    )
    return {
        "nobody": {},
        "garbage token": {IDENTITY_HEADER: "garbage"},
        "huge token": {IDENTITY_HEADER: "e" * 100_000},
        "token of another signer": {
            IDENTITY_HEADER: identity_signer(generate_keypair()[0]).sign(
                Identity(
                    principal_type="user",
                    principal_id=str(uuid.uuid4()),
                    org_id=acme.org_id,
                    roles=frozenset({"org_admin", "super_admin"}),
                ).to_claims()
            )
        },
        "expired token": expired,
        "member": acme.user("member"),
        "org_admin": acme.user("org_admin"),
        "billing_admin": acme.user("billing_admin"),
        "read key": acme.key("read"),
        "admin key": acme.key("admin"),
        "key without scopes": acme.key(),
        "operator": operator,
        "service": mint("service", principal_id="metering"),
        "user of no org": mint("user", principal_id=str(uuid.uuid4()), roles=("org_admin",)),
        **{
            stranger: mint(
                "user", principal_id=str(uuid.uuid4()), org_id=uuid.uuid4(), roles=(role,)
            )
            for role, stranger in STRANGERS.items()
        },
    }


async def send(
    http: httpx.AsyncClient, sweep: Sweep, case: Case, localstripe: LocalStripe | None
) -> httpx.Response:
    headers = {**(sweep.callers[case.caller] if case.caller else {}), **case.headers}
    if case.content is not None:
        headers["content-type"] = case.content_type
        if case.signed and localstripe is not None:
            headers.update(localstripe.signature(case.content))
    path = sweep.fill(case.path)
    params = (
        {name: sweep.fill(value) for name, value in case.params.items()} if case.params else None
    )
    return await http.request(
        case.method, path, params=params, content=case.content, headers=headers
    )


def faults(case: Case, response: httpx.Response) -> list[str]:
    """What is wrong with the answer to a bad request."""
    where = f"{case.name}: {case.method} {response.request.url.raw_path[:120]!r}"
    status = response.status_code
    if status >= 500:
        return [f"{where} -> {status} {response.text[:300]}"]
    if case.refused and status < 400:
        return [f"{where} -> {status}, not refused"]
    if status < 400:
        return []
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return [
            f"{where} -> {status} as {response.headers.get('content-type')}: {response.text[:200]}"
        ]
    body = response.json()
    missing = [name for name in ("type", "title", "status", "detail") if not body.get(name)]
    if missing or body["status"] != status:
        return [f"{where} -> {status}, a problem without {missing}: {body}"]
    if body.get("request_id") != response.headers.get("x-request-id"):
        return [f"{where} -> {status}, a problem without its request id: {body}"]
    return []


async def sweep_route(
    http: httpx.AsyncClient, sweep: Sweep, route: Route, localstripe: LocalStripe | None
) -> list[str]:
    allowed, wrong = AUTH_RULES[route.auth] if route.auth is not None else (None, ())
    found, sent, reached = [], False, False
    for case in cases_for(route, allowed, wrong):
        response = await send(http, sweep, case, localstripe)
        found += faults(case, response)
        if allowed is not None and case.caller in (allowed, STRANGERS.get(allowed)):
            sent = True
            reached = reached or response.status_code not in (401, 403)
    if sent and not reached:  # the rule's caller is not one the route lets in: a moot sweep
        found.append(f"{route.id}: no request as {allowed} got past authorization")
    return found


async def onboarding_at_payment(http: httpx.AsyncClient, sweep: Sweep) -> None:
    """Onboarding started with a plan chosen: its later steps read their bodies."""
    admin = sweep.callers["org_admin"]
    started = await http.post("/v1/onboarding", headers=admin)
    assert started.status_code == 201, started.text
    chosen = await http.put("/v1/onboarding/plan", headers=admin, json={"plan": "pro"})
    assert chosen.status_code == 200, chosen.text


@pytest.fixture
async def sweep_client(billing_app: FastAPI, db: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The ledger app; an unhandled error is a 500 answer here, as a client would see it."""
    transport = httpx.ASGITransport(app=billing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        yield http


async def sweep_ledger(
    http: httpx.AsyncClient,
    db: Any,
    acme: Org,
    globex: Org,
    mint: Callable[..., dict[str, str]],
    operator: dict[str, str],
    route: Route,
) -> list[str]:
    now = datetime.now(UTC)
    invoice = await open_invoice(db, org_id=acme.org_id, now=now)
    other_invoice = await open_invoice(db, org_id=globex.org_id, now=now)
    sweep = Sweep(
        callers=callers_of(acme, mint, operator),
        ids={
            "invoice": str(invoice),
            "org": str(acme.org_id),
            "other_org": str(globex.org_id),
            "other_org_invoice": str(other_invoice),
        },
    )
    await onboarding_at_payment(http, sweep)
    return await sweep_route(http, sweep, route, None)


UNMETERED = [route for route in ROUTES if not route.uses_metering]
METERED = [route for route in ROUTES if route.uses_metering]


@pytest.mark.parametrize("route", UNMETERED, ids=[route.id for route in UNMETERED])
async def test_bad_input_on_the_ledger_app_is_a_clear_4xx(
    sweep_client, db, acme, globex, mint_identity, operator, route
):
    found = await sweep_ledger(sweep_client, db, acme, globex, mint_identity, operator, route)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("route", METERED, ids=[route.id for route in METERED])
async def test_bad_input_on_the_ledger_app_with_metering_is_a_clear_4xx(
    metering, sweep_client, db, acme, globex, mint_identity, operator, route
):
    """Routes that read usage, against a real metering service (one down is a 503)."""
    found = await sweep_ledger(sweep_client, db, acme, globex, mint_identity, operator, route)
    assert not found, "\n".join(found)


STRIPE_SWEPT = [r for r in ROUTES if r.uses_stripe or (r.method, r.path) in STRIPE_ROUTES]


@pytest.fixture
async def stripe_sweep_client(stripe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stripe_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        yield http


@pytest.mark.parametrize("route", STRIPE_SWEPT, ids=[route.id for route in STRIPE_SWEPT])
async def test_bad_input_on_the_stripe_app_is_a_clear_4xx(
    stripe_sweep_client, stripe_app, localstripe, acme, globex, mint_identity, operator, route
):
    # Committed on the Stripe app's database: a customer, no invoice of its own, onboarding
    # at its payment step.
    await add_customer(stripe_app.state.runtime.sessionmaker, acme.org_id, "pro")
    sweep = Sweep(
        callers=callers_of(acme, mint_identity, operator),
        ids={
            "org": str(acme.org_id),
            "other_org": str(globex.org_id),
            "invoice": UNKNOWN_UUID,
            "other_org_invoice": UNKNOWN_UUID,
        },
    )
    await onboarding_at_payment(stripe_sweep_client, sweep)
    found = await sweep_route(stripe_sweep_client, sweep, route, localstripe)
    assert not found, "\n".join(found)


async def test_a_method_a_route_does_not_have_is_a_405_problem(
    sweep_client, acme, mint_identity, operator
):
    callers = callers_of(acme, mint_identity, operator)
    methods: dict[str, set[str]] = {}
    for route in ROUTES:
        methods.setdefault(route.path, set()).add(route.method)
    found = []
    for path, defined in methods.items():
        concrete = path.replace("{", "").replace("}", "")  # any value: the method is wrong
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - defined):
            for caller in ("operator", "org_admin"):
                case = Case(f"{method} as {caller}", method, concrete, caller, content=b"{}")
                response = await send(sweep_client, Sweep(callers, {}), case, None)
                found += faults(Case(**{**vars(case), "refused": True}), response)
                if response.status_code != 405:
                    found.append(f"{method} {concrete} -> {response.status_code}, not 405")
    assert not found, "\n".join(found)
