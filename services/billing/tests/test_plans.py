"""The plan catalog: members read what is on sale, the operator manages it."""

import json
import uuid

import pytest

from .conftest import add_customer, assert_problem, database_state

PRO_REQUESTS = {
    "api_requests": {
        "included_quantity": "1000000",
        "pricing": {"model": "package", "package_size": 1000, "package_price": "0.05"},
    }
}


def plan_body(**fields):
    body = {
        "key": "scale",
        "name": "Scale",
        "currency": "USD",
        "monthly_price": "249.00",
        "yearly_price": "2490.00",
        "trial_days": 7,
        "rate_limit_tier": "pro",
        "metered_charges": {
            "llm_tokens": {
                "included_quantity": "5000000",
                "pricing": {
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "10000000", "unit_price": "0.000002"},
                        {"up_to": None, "unit_price": "0.000001", "flat_fee": "10.00"},
                    ],
                },
            }
        },
    }
    body.update(fields)
    return body


async def create(client, operator, **fields):
    response = await client.post(
        "/v1/billing/admin/plans", json=plan_body(**fields), headers=operator
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_members_see_the_seeded_catalog_cheapest_first(client, acme):
    response = await client.get("/v1/billing/plans", headers=acme.user("member"))
    assert response.status_code == 200
    plans = response.json()
    assert [plan["key"] for plan in plans] == ["free", "pro", "enterprise"]
    free, pro, enterprise = plans
    assert (free["monthly_price"], free["yearly_price"], free["rate_limit_tier"]) == (
        "0.00",
        None,
        "free",
    )
    assert (pro["monthly_price"], pro["yearly_price"], pro["trial_days"]) == ("99.00", "990.00", 14)
    assert pro["rate_limit_tier"] == "pro"
    assert pro["metered_charges"] == PRO_REQUESTS
    assert (enterprise["monthly_price"], enterprise["rate_limit_tier"]) == ("999.00", "enterprise")
    assert "customers" not in pro  # the operator's figures stay in the admin API

    one = await client.get("/v1/billing/plans/pro", headers=acme.key("read"))
    assert one.status_code == 200
    assert one.json() == pro


async def test_reading_plans_needs_an_organisation_identity(client, acme, mint_identity):
    assert_problem(await client.get("/v1/billing/plans"), 401, "unauthorized")
    assert_problem(await client.get("/v1/billing/plans", headers=acme.key("write")), 403)
    service = mint_identity("service", principal_id="gateway")
    assert_problem(await client.get("/v1/billing/plans", headers=service), 401)


async def test_the_operator_creates_a_plan(client, operator, acme):
    created = await create(client, operator)
    assert created["key"] == "scale"
    assert created["monthly_price"] == "249.00"
    assert created["customers"] == 0
    assert created["archived_at"] is None
    tiers = created["metered_charges"]["llm_tokens"]["pricing"]["tiers"]
    assert tiers == [
        {"up_to": "10000000", "unit_price": "0.000002", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.000001", "flat_fee": "10.00"},
    ]
    on_sale = await client.get("/v1/billing/plans", headers=acme.user())
    assert [plan["key"] for plan in on_sale.json()] == ["free", "pro", "scale", "enterprise"]
    fetched = await client.get("/v1/billing/admin/plans/scale", headers=operator)
    assert fetched.json() == created


async def test_json_numbers_are_read_as_exact_decimals(client, operator):
    # 18 significant digits: a float would keep about 16 of them.
    raw = json.dumps(plan_body(key="exact", currency="KWD", monthly_price="0"))
    raw = raw.replace('"0.000002"', "123456.123456789012").replace('"0"', "12.345")
    response = await client.post(
        "/v1/billing/admin/plans",
        content=raw,
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["monthly_price"] == "12.345"
    tier = plan["metered_charges"]["llm_tokens"]["pricing"]["tiers"][0]
    assert tier["unit_price"] == "123456.123456789012"
    stored = await client.get("/v1/billing/admin/plans/exact", headers=operator)
    assert stored.json()["metered_charges"] == plan["metered_charges"]


async def test_exponents_are_written_out(client, operator):
    raw = json.dumps(plan_body(key="plain", metered_charges={}))
    raw = raw.replace(
        '"metered_charges": {}',
        '"metered_charges": {"m": {"included_quantity": 1e6,'
        ' "pricing": {"model": "per_unit", "unit_price": "5E-7"}}}',
    )
    response = await client.post(
        "/v1/billing/admin/plans",
        content=raw,
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["metered_charges"]["m"] == {
        "included_quantity": "1000000",
        "pricing": {"model": "per_unit", "unit_price": "0.0000005"},
    }


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"key": "Bad Key"}, ["body", "key"]),
        ({"key": ""}, ["body", "key"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "a\nb"}, ["body", "name"]),
        ({"currency": "usd"}, ["body", "currency"]),
        ({"currency": "XYZ"}, ["body", "currency"]),
        ({"monthly_price": "-1"}, ["body", "monthly_price"]),
        ({"monthly_price": "ninety"}, ["body", "monthly_price"]),
        ({"monthly_price": "NaN"}, ["body", "monthly_price"]),
        ({"monthly_price": 1e300}, ["body", "monthly_price"]),
        ({"trial_days": 366}, ["body", "trial_days"]),
        ({"trial_days": 1.5}, ["body", "trial_days"]),
        ({"rate_limit_tier": "gold"}, ["body", "rate_limit_tier"]),
        ({"unknown": 1}, ["body", "unknown"]),
        (
            {
                "metered_charges": {
                    "Bad Meter": {"pricing": {"model": "per_unit", "unit_price": "1"}}
                }
            },
            ["body", "metered_charges", "Bad Meter", "[key]"],
        ),
        (
            {"metered_charges": {"m": {"pricing": {"model": "per_unit", "unit_price": "-1"}}}},
            ["body", "metered_charges", "m", "pricing", "per_unit", "unit_price"],
        ),
        (
            {
                "metered_charges": {
                    "m": {
                        "included_quantity": "-5",
                        "pricing": {"model": "per_unit", "unit_price": "1"},
                    }
                }
            },
            ["body", "metered_charges", "m", "included_quantity"],
        ),
    ],
)
async def test_invalid_plans_are_refused_field_by_field(client, operator, db, fields, location):
    before = await database_state(db)
    response = await client.post(
        "/v1/billing/admin/plans", json=plan_body(**fields), headers=operator
    )
    body = assert_problem(response, 422, "validation-error")
    assert location in [error["loc"] for error in body["errors"]], body["errors"]
    assert await database_state(db) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"monthly_price": "99.001"}, "monthly_price 99.001 is not a whole number of USD"),
        ({"currency": "JPY", "monthly_price": "1500.5", "yearly_price": None}, "JPY"),
        ({"yearly_price": "0.999"}, "yearly_price"),
        (
            {
                "metered_charges": {
                    "m": {
                        "pricing": {
                            "model": "volume",
                            "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "0.001"}],
                        }
                    }
                }
            },
            "metered_charges.m.pricing.tiers.0.flat_fee",
        ),
        (
            {
                "metered_charges": {
                    "m": {
                        "pricing": {
                            "model": "graduated",
                            "tiers": [
                                {"up_to": "10", "unit_price": "1"},
                                {"up_to": "5", "unit_price": "1"},
                                {"up_to": None, "unit_price": "1"},
                            ],
                        }
                    }
                }
            },
            "greater than the previous tier",
        ),
    ],
)
async def test_amounts_must_suit_the_currency_and_tiers_their_order(
    client, operator, db, fields, message
):
    before = await database_state(db)
    response = await client.post(
        "/v1/billing/admin/plans", json=plan_body(**fields), headers=operator
    )
    body = assert_problem(response, 422, "validation-error")
    assert any(message in error["message"] for error in body["errors"]), body["errors"]
    assert await database_state(db) == before


async def test_a_body_that_is_not_json_or_too_many_charges(client, operator, db):
    before = await database_state(db)
    broken = await client.post(
        "/v1/billing/admin/plans",
        content=b'{"key": "x", "monthly_price": 1.',
        headers={**operator, "content-type": "application/json"},
    )
    assert_problem(broken, 422, "validation-error")
    many = {f"m{i}": {"pricing": {"model": "per_unit", "unit_price": "1"}} for i in range(21)}
    too_many = await client.post(
        "/v1/billing/admin/plans", json=plan_body(metered_charges=many), headers=operator
    )
    assert_problem(too_many, 422, "validation-error")
    assert await database_state(db) == before


async def test_a_plan_key_is_never_reused(client, operator, db):
    await create(client, operator)
    await client.delete("/v1/billing/admin/plans/scale", headers=operator)
    before = await database_state(db)
    again = await client.post("/v1/billing/admin/plans", json=plan_body(), headers=operator)
    assert_problem(again, 409, "plan-key-taken")
    seeded = await client.post(
        "/v1/billing/admin/plans", json=plan_body(key="pro"), headers=operator
    )
    assert_problem(seeded, 409, "plan-key-taken")
    assert await database_state(db) == before


@pytest.mark.parametrize("role", ["member", "org_admin", "billing_admin", "support_agent"])
async def test_only_the_platform_operator_manages_the_catalog(client, acme, db, role):
    before = await database_state(db, acme)
    headers = acme.user(role)
    assert_problem(await client.get("/v1/billing/admin/plans", headers=headers), 403, "forbidden")
    assert_problem(
        await client.post("/v1/billing/admin/plans", json=plan_body(), headers=headers), 403
    )
    assert_problem(
        await client.patch("/v1/billing/admin/plans/pro", json={"name": "X"}, headers=headers), 403
    )
    assert_problem(await client.delete("/v1/billing/admin/plans/pro", headers=headers), 403)
    assert_problem(
        await client.post("/v1/billing/admin/plans", json=plan_body(), headers=acme.key("admin")),
        403,
    )
    assert await database_state(db, acme) == before


@pytest.mark.parametrize("key", ["nope", "../pro", "PRO", "x" * 300, "pro%00"])
async def test_unknown_plans_are_404(client, operator, acme, key):
    assert_problem(await client.get(f"/v1/billing/admin/plans/{key}", headers=operator), 404)
    assert_problem(
        await client.patch(f"/v1/billing/admin/plans/{key}", json={"name": "X"}, headers=operator),
        404,
    )
    assert_problem(await client.delete(f"/v1/billing/admin/plans/{key}", headers=operator), 404)
    assert_problem(await client.get(f"/v1/billing/plans/{key}", headers=acme.user()), 404)


async def test_a_plan_without_customers_changes_freely(client, operator):
    await create(client, operator)
    response = await client.patch(
        "/v1/billing/admin/plans/scale",
        json={
            "name": "Scale 2",
            "monthly_price": 199,
            "yearly_price": None,
            "metered_charges": PRO_REQUESTS,
            "rate_limit_tier": "enterprise",
        },
        headers=operator,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["name"], changed["monthly_price"], changed["yearly_price"]) == (
        "Scale 2",
        "199.00",
        None,
    )
    assert changed["metered_charges"] == PRO_REQUESTS
    assert changed["rate_limit_tier"] == "enterprise"
    assert changed["updated_at"] > changed["created_at"]
    assert (await client.get("/v1/billing/admin/plans/scale", headers=operator)).json() == changed


async def test_prices_are_fixed_once_a_customer_is_on_the_plan(client, operator, acme, db):
    await create(client, operator)
    await add_customer(db, acme.org_id, "scale")
    before = await database_state(db, acme)
    for change in (
        {"monthly_price": "1.00"},
        {"yearly_price": None},
        {"currency": "EUR"},
        {"metered_charges": {}},
        {"name": "Renamed", "monthly_price": "1.00"},  # all or nothing
    ):
        response = await client.patch(
            "/v1/billing/admin/plans/scale", json=change, headers=operator
        )
        body = assert_problem(response, 409, "plan-has-customers")
        assert "1 customer(s)" in body["detail"]
        assert set(body["fields"]) == set(change) - {"name"}
    assert await database_state(db, acme) == before

    same_price = await client.patch(
        "/v1/billing/admin/plans/scale",
        json={"monthly_price": "249", "name": "Scale (legacy)", "trial_days": 0},
        headers=operator,
    )
    assert same_price.status_code == 200, same_price.text
    assert same_price.json()["name"] == "Scale (legacy)"
    assert same_price.json()["customers"] == 1
    assert same_price.json()["monthly_price"] == "249.00"


async def test_a_new_currency_must_suit_the_kept_amounts(client, operator, db):
    await create(client, operator, monthly_price="249.50", yearly_price=None)
    before = await database_state(db)
    response = await client.patch(
        "/v1/billing/admin/plans/scale", json={"currency": "JPY"}, headers=operator
    )
    body = assert_problem(response, 422, "invalid-plan")
    assert "249.5" in body["detail"]
    assert await database_state(db) == before
    ok = await client.patch(
        "/v1/billing/admin/plans/scale",
        json={"currency": "JPY", "monthly_price": 30000},
        headers=operator,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["monthly_price"] == "30000"


@pytest.mark.parametrize(
    "change",
    [{}, {"name": None}, {"trial_days": None}, {"monthly_price": None}, {"key": "other"}, []],
)
async def test_meaningless_changes_are_refused(client, operator, db, change):
    before = await database_state(db)
    response = await client.patch("/v1/billing/admin/plans/pro", json=change, headers=operator)
    assert_problem(response, 422, "validation-error")
    assert await database_state(db) == before


async def test_archiving_takes_a_plan_off_sale(client, operator, acme, db):
    await create(client, operator)
    await add_customer(db, acme.org_id, "scale")
    archived = await client.delete("/v1/billing/admin/plans/scale", headers=operator)
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    assert archived.json()["customers"] == 1  # they stay on it
    again = await client.delete("/v1/billing/admin/plans/scale", headers=operator)
    assert again.json()["archived_at"] == archived.json()["archived_at"]

    on_sale = await client.get("/v1/billing/plans", headers=acme.user())
    assert "scale" not in [plan["key"] for plan in on_sale.json()]
    assert_problem(await client.get("/v1/billing/plans/scale", headers=acme.user()), 404)
    listed = await client.get("/v1/billing/admin/plans", headers=operator)
    assert "scale" not in [plan["key"] for plan in listed.json()]
    everything = await client.get(
        "/v1/billing/admin/plans", params={"include_archived": "true"}, headers=operator
    )
    [scale] = [plan for plan in everything.json() if plan["key"] == "scale"]
    assert scale == archived.json()
    changed = await client.patch(
        "/v1/billing/admin/plans/scale", json={"name": "X"}, headers=operator
    )
    assert_problem(changed, 409, "plan-archived")


async def test_the_default_plan_cannot_be_archived(client, operator, db):
    before = await database_state(db)
    response = await client.delete("/v1/billing/admin/plans/free", headers=operator)
    body = assert_problem(response, 409, "default-plan")
    assert "TOLLGATE_BILLING_DEFAULT_PLAN" in body["detail"]
    assert await database_state(db) == before


async def test_the_admin_listing_counts_customers(client, operator, db):
    for _ in range(3):
        await add_customer(db, uuid.uuid4(), "pro")
    listed = await client.get("/v1/billing/admin/plans", headers=operator)
    counts = {plan["key"]: plan["customers"] for plan in listed.json()}
    assert counts["pro"] == 3
    assert counts["enterprise"] == 0
