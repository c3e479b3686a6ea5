"""BillingSettings as the process loads them: from TOLLGATE_* environment variables."""

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tollgate_billing.catalog.defaults import DEFAULT_CATALOG
from tollgate_billing.config import BillingSettings


def test_the_defaults(environment):
    settings = BillingSettings()  # type: ignore[call-arg]
    assert settings.catalog == DEFAULT_CATALOG
    assert [plan.key for plan in settings.catalog] == ["free", "pro", "enterprise"]
    assert settings.default_plan == "free"
    assert settings.organizations_consumer_name == "billing-organizations"
    assert settings.invoice_issuer == "Tollgate"
    pro = settings.catalog[1]
    assert (pro.monthly_price, pro.yearly_price, pro.rate_limit_tier) == (
        Decimal("99.00"),
        Decimal("990.00"),
        "pro",
    )
    requests = pro.metered_charges["api_requests"]
    assert requests.included_quantity == 1_000_000
    assert requests.pricing.model_dump() == {
        "model": "package",
        "package_size": 1000,
        "package_price": Decimal("0.05"),
    }


def test_the_catalog_comes_from_the_environment_with_exact_numbers(environment):
    # JSON numbers, one with more digits than a float keeps.
    environment.setenv(
        "TOLLGATE_BILLING_CATALOG",
        '[{"key": "basic", "name": "Basic", "currency": "EUR", "monthly_price": 9.99,'
        ' "metered_charges": {"gb_stored": {"included_quantity": 10.5, "pricing":'
        ' {"model": "per_unit", "unit_price": 0.123456789012}}}},'
        ' {"key": "yen", "name": "Yen", "currency": "JPY", "monthly_price": 1500}]',
    )
    environment.setenv("TOLLGATE_BILLING_DEFAULT_PLAN", "basic")
    environment.setenv("TOLLGATE_BILLING_ORGANIZATIONS_CONSUMER_NAME", "billing-eu")
    settings = BillingSettings()  # type: ignore[call-arg]
    basic, yen = settings.catalog
    assert basic.monthly_price == Decimal("9.99")
    charge = basic.metered_charges["gb_stored"]
    assert charge.included_quantity == Decimal("10.5")
    assert str(charge.pricing.unit_price) == "0.123456789012"  # type: ignore[union-attr]
    assert (yen.currency, yen.monthly_price) == ("JPY", 1500)
    assert settings.default_plan == "basic"
    assert settings.organizations_consumer_name == "billing-eu"


@pytest.mark.parametrize(
    ("catalog", "default_plan", "message"),
    [
        ([{"key": "free", "name": "Free"}], "pro", "DEFAULT_PLAN must be one of the plans"),
        (
            [{"key": "free", "name": "Free"}, {"key": "free", "name": "Again"}],
            "free",
            "names a plan key twice",
        ),
        ([{"key": "free", "name": "Free", "currency": "ABC"}], "free", "ISO 4217"),
        ([{"key": "free", "name": "Free", "monthly_price": "0.001"}], "free", "minor units"),
        ([{"key": "free"}], "free", "name"),
    ],
)
def test_a_bad_catalog_stops_the_process(environment, catalog, default_plan, message):
    environment.setenv("TOLLGATE_BILLING_CATALOG", json.dumps(catalog))
    environment.setenv("TOLLGATE_BILLING_DEFAULT_PLAN", default_plan)
    with pytest.raises(ValidationError, match=message):
        BillingSettings()  # type: ignore[call-arg]


def test_a_catalog_that_is_not_json_is_named(environment):
    environment.setenv("TOLLGATE_BILLING_CATALOG", "[{not json")
    with pytest.raises((ValidationError, ValueError), match=r"catalog|Expecting"):
        BillingSettings()  # type: ignore[call-arg]


def test_a_missing_identity_key_is_named(environment):
    environment.delenv("TOLLGATE_IDENTITY_PUBLIC_KEY")
    with pytest.raises(ValidationError, match="TOLLGATE_IDENTITY_PUBLIC_KEY"):
        BillingSettings()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY", None, "identity_private_key"),
        ("TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY", "not-a-key", "Ed25519 private key"),
        ("TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY", "", "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY"),
        ("TOLLGATE_BILLING_METERING_URL", None, "metering_url"),
        ("TOLLGATE_BILLING_METERING_URL", "metering:8103", "metering_url"),
    ],
)
def test_billing_needs_its_own_key_and_metering(environment, name, value, message):
    if value is None:
        environment.delenv(name)
    else:
        environment.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        BillingSettings()  # type: ignore[call-arg]


def test_the_invoice_issuer_comes_from_the_environment(environment):
    environment.setenv("TOLLGATE_BILLING_INVOICE_ISSUER", "  Łódź Software Sp. z o.o.  ")
    assert BillingSettings().invoice_issuer == "Łódź Software Sp. z o.o."  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["", "   ", "x" * 201])
def test_an_empty_or_overlong_invoice_issuer_stops_the_process(environment, value):
    environment.setenv("TOLLGATE_BILLING_INVOICE_ISSUER", value)
    with pytest.raises(ValidationError, match="invoice_issuer"):
        BillingSettings()  # type: ignore[call-arg]
