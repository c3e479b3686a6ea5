"""The dunning settings as the process loads them: bad values stop the service with a message
that names the setting."""

import pytest
from pydantic import ValidationError

from tollgate_billing.config import BillingSettings
from tollgate_billing.payments.models import DunningAction
from tollgate_billing.payments.schedule import DunningSchedule


def test_the_defaults_and_the_environment(environment):
    settings = BillingSettings()  # type: ignore[call-arg]
    assert DunningSchedule.from_settings(settings) == DunningSchedule(
        retry_days=(1, 3, 5), grace_days=7, action=DunningAction.DOWNGRADE
    )
    assert settings.payment_collection_interval_seconds == 60
    environment.setenv("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "[2, 4, 8, 12]")
    environment.setenv("TOLLGATE_BILLING_DUNNING_GRACE_DAYS", "14")
    environment.setenv("TOLLGATE_BILLING_DUNNING_ACTION", "suspend")
    environment.setenv("TOLLGATE_BILLING_PAYMENT_COLLECTION_INTERVAL_SECONDS", "5")
    settings = BillingSettings()  # type: ignore[call-arg]
    assert DunningSchedule.from_settings(settings) == DunningSchedule(
        retry_days=(2, 4, 8, 12), grace_days=14, action=DunningAction.SUSPEND
    )
    assert settings.payment_collection_interval_seconds == 5
    environment.setenv("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "[]")  # no retry: straight on
    assert BillingSettings().dunning_retry_days == []  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "[3, 1]", "increasing"),
        ("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "[1, 1, 3]", "increasing"),
        ("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "[0, 3]", "at least 1"),
        (
            "TOLLGATE_BILLING_DUNNING_RETRY_DAYS",
            "[1, 3, 7]",
            "before TOLLGATE_BILLING_DUNNING_GRACE",
        ),
        ("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", "1,3,5", "dunning_retry_days"),
        ("TOLLGATE_BILLING_DUNNING_RETRY_DAYS", '["a"]', "dunning_retry_days"),
        ("TOLLGATE_BILLING_DUNNING_GRACE_DAYS", "0", "dunning_grace_days"),
        ("TOLLGATE_BILLING_DUNNING_ACTION", "delete", "dunning_action"),
        ("TOLLGATE_BILLING_PAYMENT_COLLECTION_INTERVAL_SECONDS", "0", "payment_collection"),
    ],
)
def test_bad_values_stop_the_service_with_a_clear_message(environment, name, value, words):
    environment.setenv(name, value)
    with pytest.raises((ValidationError, ValueError)) as raised:
        BillingSettings()  # type: ignore[call-arg]
    assert words in str(raised.value)
