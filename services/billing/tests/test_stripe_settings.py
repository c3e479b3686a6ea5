"""The Stripe settings as the process loads them: off unless the key is set, and a bad
combination stops the service with a message naming the variable."""

import secrets

import pytest
from pydantic import ValidationError

from tollgate_billing.config import BillingSettings

KEY = "TOLLGATE_BILLING_STRIPE_SECRET_KEY"
WEBHOOK_SECRET = "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET"


@pytest.fixture
def environment(environment):
    """Conftest's production environment, without any Stripe variable of the machine's."""
    for name in (KEY, WEBHOOK_SECRET):
        environment.delenv(name, raising=False)
    return environment


def stripe_key() -> str:
    return "sk_test_" + secrets.token_hex(12)


def refusal(environment) -> str:
    with pytest.raises(ValidationError) as refused:
        BillingSettings()  # type: ignore[call-arg]
    return str(refused.value)


def test_off_by_default_and_when_empty(environment):
    assert BillingSettings().stripe_enabled is False  # type: ignore[call-arg]
    environment.setenv(KEY, "")
    settings = BillingSettings()  # type: ignore[call-arg]
    assert settings.stripe_enabled is False
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.stripe_webhook_tolerance_seconds == 300


def test_on_with_a_key_and_a_webhook_secret_that_are_never_shown(environment):
    key, webhook_secret = stripe_key(), "whsec_" + secrets.token_hex(16)
    environment.setenv(KEY, key)
    environment.setenv(WEBHOOK_SECRET, webhook_secret)
    settings = BillingSettings()  # type: ignore[call-arg]
    assert settings.stripe_enabled is True
    assert key not in repr(settings) and webhook_secret not in repr(settings)
    assert settings.secret_values()[KEY] == key
    assert settings.secret_values()[WEBHOOK_SECRET] == webhook_secret


def test_a_key_needs_the_webhook_secret(environment):
    environment.setenv(KEY, stripe_key())
    assert WEBHOOK_SECRET in refusal(environment)


def test_a_publishable_key_is_refused_without_echoing_it(environment):
    publishable = "pk_test_" + secrets.token_hex(12)
    environment.setenv(KEY, publishable)
    environment.setenv(WEBHOOK_SECRET, "whsec_" + secrets.token_hex(16))
    message = refusal(environment)
    assert "sk_... or rk_..." in message
    assert publishable not in message


def test_dev_secrets_are_refused_outside_dev_mode(environment):
    environment.setenv(KEY, stripe_key())
    environment.setenv(WEBHOOK_SECRET, "dev-webhook-secret")
    assert f"{WEBHOOK_SECRET} must be a real secret" in refusal(environment)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOLLGATE_BILLING_STRIPE_API_BASE", "api.stripe.com"),
        ("TOLLGATE_BILLING_STRIPE_WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("TOLLGATE_BILLING_STRIPE_TIMEOUT_SECONDS", "0"),
        ("TOLLGATE_BILLING_STRIPE_MAX_NETWORK_RETRIES", "-1"),
        ("TOLLGATE_BILLING_STRIPE_SYNC_INTERVAL_SECONDS", "0"),
        ("TOLLGATE_BILLING_STRIPE_CHECKOUT_SUCCESS_URL", "not a url"),
    ],
)
def test_bad_values_stop_the_service(environment, name, value):
    environment.setenv(name, value)
    assert name.removeprefix("TOLLGATE_BILLING_").lower() in refusal(environment)
