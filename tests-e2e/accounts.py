"""A fresh organisation signed up through the gateway, and the headers to act as it."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "a long enough passphrase"


@dataclass(frozen=True)
class Account:
    signup: dict[str, Any]  # the signup answer: organization, user, api_key, tokens

    @property
    def org_id(self) -> str:
        return str(self.signup["organization"]["id"])

    @property
    def key(self) -> dict[str, str]:
        """The first API key's header (read and write scopes)."""
        return {"Authorization": f"Bearer {self.signup['api_key']['key']}"}

    @property
    def admin(self) -> dict[str, str]:
        """The signed-up user's header: the organisation's org_admin."""
        return {"Authorization": f"Bearer {self.signup['tokens']['access_token']}"}


def sign_up(gateway_url: str, name: str) -> Account:
    response = httpx.post(
        f"{gateway_url}/v1/signup",
        json={
            "organization_name": name,
            "email": f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.text
    return Account(response.json())
