"""KeysSettings as the process loads them: from TOLLGATE_* environment variables."""

import base64

import pytest
from pydantic import ValidationError

from tollgate_keys.config import KeysSettings
from tollgate_shared.identity import generate_keypair


@pytest.fixture
def environment(monkeypatch, identity_keys):
    """A complete environment for the keys service; tests change one variable."""
    monkeypatch.setenv("TOLLGATE_ENV", "production")
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", "postgresql://keys@db/tollgate")
    monkeypatch.setenv("TOLLGATE_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("TOLLGATE_IDENTITY_PUBLIC_KEY", identity_keys[1])
    monkeypatch.setenv("TOLLGATE_KEYS_TOKEN_PRIVATE_KEY", generate_keypair()[0])
    return monkeypatch


def test_a_complete_environment_loads(environment):
    private_key = generate_keypair()[0]
    environment.setenv("TOLLGATE_KEYS_TOKEN_PRIVATE_KEY", private_key)
    settings = KeysSettings()  # type: ignore[call-arg]
    assert settings.token_private_key == private_key
    assert settings.database_url == "postgresql://keys@db/tollgate"


@pytest.mark.parametrize(
    "malformed",
    [
        "not a key at all",
        "dev-token-private-key",
        base64.urlsafe_b64encode(b"sixteen bytes!!!").decode(),  # valid base64, wrong length
        "%%%%",
    ],
)
def test_a_malformed_token_private_key_stops_the_settings_from_loading(environment, malformed):
    environment.setenv("TOLLGATE_KEYS_TOKEN_PRIVATE_KEY", malformed)
    with pytest.raises(ValidationError) as refused:
        KeysSettings()  # type: ignore[call-arg]
    [error] = refused.value.errors()
    assert error["loc"] == ("token_private_key",)
    assert "not a base64url Ed25519 private key" in error["msg"]
    assert malformed not in str(refused.value)


def test_a_missing_token_private_key_is_named(environment):
    environment.delenv("TOLLGATE_KEYS_TOKEN_PRIVATE_KEY")
    with pytest.raises(ValidationError, match="TOLLGATE_KEYS_TOKEN_PRIVATE_KEY must be set"):
        KeysSettings()  # type: ignore[call-arg]
