"""The operator's routes file: mistakes stop the gateway at start with a clear reason."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from tollgate_gateway.routing.table import RouteTable, builtin_routes, load_operator_routes


def _load(tmp_path: Path, body: str):
    path = tmp_path / "routes.toml"
    path.write_text(body)
    return load_operator_routes(path)


def test_a_valid_file_gives_routes_with_defaults(tmp_path):
    [route] = _load(
        tmp_path,
        '[[routes]]\nname = "shop"\nprefix = "/api/shop/"\nupstream = "http://shop:9000"\n',
    )
    assert route.prefix == "/api/shop"
    assert route.credential == "key"
    assert route.strip_prefix is True
    assert route.meter == "api_requests"
    assert route.required_scopes("GET") == {"read"}
    assert route.required_scopes("DELETE") == {"write"}
    assert route.upstream_url("/api/shop/items/1", "q=2") == "http://shop:9000/items/1?q=2"


@pytest.mark.parametrize(
    "prefix",
    ["/", "/v1", "/v1/keys", "/internal/x", "/docs", "/openapi.json", "/metrics", "/a/../b", "//x"],
)
def test_reserved_or_unclean_prefixes_are_refused(tmp_path, prefix):
    with pytest.raises(ValidationError):
        _load(tmp_path, f'[[routes]]\nname = "x"\nprefix = "{prefix}"\nupstream = "http://u"\n')


@pytest.mark.parametrize(
    "extra",
    [
        "methods = []",
        'methods = ["FETCH"]',
        'scopes = ["superuser"]',
        'credential = "cookie"',
        "unknown = 1",
        'meter = "Bad Meter"',
        "timeout_seconds = 0",
    ],
)
def test_bad_fields_are_refused(tmp_path, extra):
    with pytest.raises(ValidationError):
        _load(
            tmp_path, f'[[routes]]\nname = "x"\nprefix = "/api/x"\nupstream = "http://u"\n{extra}\n'
        )


def test_duplicate_names_and_prefixes_are_refused(tmp_path):
    route = '[[routes]]\nname = "{name}"\nprefix = "{prefix}"\nupstream = "http://u"\n'
    with pytest.raises(ValueError, match="unique"):
        _load(tmp_path, route.format(name="a", prefix="/a") + route.format(name="a", prefix="/b"))
    routes = _load(
        tmp_path, route.format(name="a", prefix="/a") + route.format(name="b", prefix="/a")
    )
    with pytest.raises(ValueError, match="share a prefix"):
        RouteTable(routes)


def test_longest_prefix_wins_on_whole_segments():
    table = RouteTable(builtin_routes({"keys": "http://keys"}))
    assert table.match("/v1/keys/123").name == "keys"
    assert table.match("/v1/keys").name == "keys"
    assert table.match("/v1/keysx") is None
    assert table.match("/v1/auth/login").credential == "public"


def test_metering_admin_prefixes_win_over_the_keys_admin_route():
    table = RouteTable(builtin_routes({"keys": "http://keys", "metering": "http://metering"}))
    admin = table.match("/v1/admin/entitlements/0b7e5a59-6f3c-4b8e-9a51-3d1f0c2a7e11")
    assert admin is not None
    assert (admin.name, admin.service, admin.credential) == (
        "metering-entitlements-admin",
        "metering",
        "user",
    )
    assert admin.roles == frozenset({"super_admin"})
    assert table.match("/v1/admin/analytics/top").service == "metering"
    assert table.match("/v1/admin/organizations").service == "keys"
    assert table.match("/v1/admin/entitlementsx").service == "keys"  # whole segments only
    own = table.match("/v1/entitlements")
    assert (own.name, own.service, own.credential, own.roles) == (
        "entitlements",
        "metering",
        "any",
        frozenset(),
    )


def test_billing_routes_and_its_operator_only_catalog_administration():
    table = RouteTable(builtin_routes({"keys": "http://keys", "billing": "http://billing"}))
    plans = table.match("/v1/billing/plans")
    assert (plans.name, plans.service, plans.credential, plans.roles) == (
        "billing",
        "billing",
        "any",
        frozenset(),
    )
    admin = table.match("/v1/billing/admin/plans/pro")
    assert (admin.name, admin.service, admin.credential, admin.roles) == (
        "billing-admin",
        "billing",
        "user",
        frozenset({"super_admin"}),
    )
    assert table.match("/v1/billing/adminx").name == "billing"  # whole segments only


def test_stripe_webhooks_are_public_and_only_that_path():
    table = RouteTable(builtin_routes({"keys": "http://keys", "billing": "http://billing"}))
    webhooks = table.match("/v1/billing/webhooks/stripe")
    assert (webhooks.name, webhooks.service, webhooks.credential) == (
        "stripe-webhooks",
        "billing",
        "public",
    )
    # A sibling path is not public: it needs a credential like the rest of billing.
    assert table.match("/v1/billing/webhooks/other").credential == "any"
    assert table.match("/v1/onboarding/steps/plan").name == "onboarding"
