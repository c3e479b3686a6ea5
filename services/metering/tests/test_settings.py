"""MeteringSettings as the process loads them: from TOLLGATE_* environment variables."""

import pytest
from pydantic import ValidationError

from tollgate_metering.config import MeteringSettings
from tollgate_metering.entitlements.terms import DEFAULT_PLAN_ENTITLEMENTS, EntitlementTerms, Mode


@pytest.fixture
def environment(monkeypatch, identity_keys):
    """A complete environment for the metering service; tests change one variable."""
    monkeypatch.setenv("TOLLGATE_ENV", "production")
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", "postgresql://metering@db/tollgate")
    monkeypatch.setenv("TOLLGATE_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("TOLLGATE_IDENTITY_PUBLIC_KEY", identity_keys[1])
    return monkeypatch


def test_the_defaults(environment):
    settings = MeteringSettings()  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://metering@db/tollgate"
    assert (settings.late_event_days, settings.raw_retention_days) == (35, 35)
    assert settings.future_tolerance_seconds == 300
    assert settings.retention_sweep_interval_seconds == 3600
    assert settings.usage_consumer_name == "metering-usage"
    assert settings.plan_entitlements == DEFAULT_PLAN_ENTITLEMENTS
    assert settings.unknown_plan == "free"
    assert settings.organizations_consumer_name == "metering-organizations"


def test_the_metering_variables_are_read(environment):
    environment.setenv("TOLLGATE_METERING_LATE_EVENT_DAYS", "7")
    environment.setenv("TOLLGATE_METERING_RAW_RETENTION_DAYS", "90")
    environment.setenv("TOLLGATE_METERING_FUTURE_TOLERANCE_SECONDS", "60")
    environment.setenv("TOLLGATE_METERING_USAGE_CONSUMER_NAME", "metering-eu")
    settings = MeteringSettings()  # type: ignore[call-arg]
    assert (settings.late_event_days, settings.raw_retention_days) == (7, 90)
    assert settings.future_tolerance_seconds == 60
    assert settings.usage_consumer_name == "metering-eu"


def test_retention_shorter_than_the_late_event_window_is_refused(environment):
    environment.setenv("TOLLGATE_METERING_LATE_EVENT_DAYS", "40")
    with pytest.raises(ValidationError, match="RAW_RETENTION_DAYS must be at least"):
        MeteringSettings()  # type: ignore[call-arg]


def test_a_missing_identity_key_is_named(environment):
    environment.delenv("TOLLGATE_IDENTITY_PUBLIC_KEY")
    with pytest.raises(ValidationError, match="TOLLGATE_IDENTITY_PUBLIC_KEY"):
        MeteringSettings()  # type: ignore[call-arg]


def test_plan_entitlements_come_from_the_environment(environment):
    environment.setenv(
        "TOLLGATE_METERING_PLAN_ENTITLEMENTS",
        '{"basic": {"api_requests": {"limit": 500, "mode": "soft", "grace_percent": 5}}}',
    )
    environment.setenv("TOLLGATE_METERING_UNKNOWN_PLAN", "basic")
    settings = MeteringSettings()  # type: ignore[call-arg]
    terms = EntitlementTerms(limit=500, mode=Mode.SOFT, grace_percent=5)
    assert settings.plan_entitlements == {"basic": {"api_requests": terms}}


@pytest.mark.parametrize(
    "terms",
    [
        '{"limit": 0}',
        '{"limit": -5}',
        '{"limit": 1e16}',
        '{"limit": "NaN"}',
        '{"limit": 10, "mode": "blocking"}',
        '{"limit": 10, "grace_percent": -1}',
        '{"limit": 10, "grace_percent": 1001}',
        '{"limit": 10, "unknown": true}',
    ],
)
def test_bad_plan_terms_stop_the_service_at_start(environment, terms):
    environment.setenv("TOLLGATE_METERING_PLAN_ENTITLEMENTS", f'{{"free": {{"x": {terms}}}}}')
    with pytest.raises(ValidationError, match=r"PLAN_ENTITLEMENTS|plan_entitlements"):
        MeteringSettings()  # type: ignore[call-arg]


def test_a_meter_key_that_no_meter_can_have_is_refused(environment):
    environment.setenv(
        "TOLLGATE_METERING_PLAN_ENTITLEMENTS", '{"free": {"API Calls": {"limit": 1}}}'
    )
    with pytest.raises(ValidationError):
        MeteringSettings()  # type: ignore[call-arg]


def test_the_fallback_plan_must_be_a_plan(environment):
    environment.setenv("TOLLGATE_METERING_PLAN_ENTITLEMENTS", '{"gold": {}}')
    with pytest.raises(ValidationError, match="UNKNOWN_PLAN"):
        MeteringSettings()  # type: ignore[call-arg]
