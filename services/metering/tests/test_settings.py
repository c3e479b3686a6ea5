"""MeteringSettings as the process loads them: from TOLLGATE_* environment variables."""

import pytest
from pydantic import ValidationError

from tollgate_metering.config import MeteringSettings


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
