"""Development secrets: generated once per state folder, never committed, never defaults."""

import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tollgate_shared.identity import generate_keypair


@dataclass(frozen=True)
class StackSecrets:
    identity_private_key: str
    identity_public_key: str
    user_token_private_key: str
    user_token_public_key: str
    superadmin_password: str
    postgres_password: str
    # Billing's own key pair (ADR 0018): billing signs its calls to metering's usage endpoint.
    # Defaults let a secrets.json written before it existed load (the pair is then made).
    billing_identity_private_key: str = ""
    billing_identity_public_key: str = ""

    @classmethod
    def generate(cls) -> "StackSecrets":
        identity = generate_keypair()
        user_token = generate_keypair()
        billing_identity = generate_keypair()
        return cls(
            identity_private_key=identity[0],
            identity_public_key=identity[1],
            user_token_private_key=user_token[0],
            user_token_public_key=user_token[1],
            superadmin_password=secrets.token_urlsafe(18),
            postgres_password=secrets.token_urlsafe(18),
            billing_identity_private_key=billing_identity[0],
            billing_identity_public_key=billing_identity[1],
        )

    @classmethod
    def load_or_create(cls, path: Path) -> "StackSecrets":
        if path.exists():
            loaded = cls(**json.loads(path.read_text()))
            if loaded.billing_identity_private_key:
                return loaded
            # A state folder from before billing had its own key: add the pair, keep the rest.
            private, public = generate_keypair()
            upgraded = replace(
                loaded, billing_identity_private_key=private, billing_identity_public_key=public
            )
            path.write_text(json.dumps(asdict(upgraded), indent=2))
            return upgraded
        created = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(asdict(created), indent=2))
        return created

    def as_env_file(self) -> str:
        """KEY=value lines for docker compose's .env."""
        return "\n".join(
            [
                f"TOLLGATE_IDENTITY_PUBLIC_KEY={self.identity_public_key}",
                f"TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY={self.identity_private_key}",
                f"TOLLGATE_KEYS_TOKEN_PRIVATE_KEY={self.user_token_private_key}",
                f"TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY={self.user_token_public_key}",
                f"TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY={self.billing_identity_private_key}",
                f"TOLLGATE_METERING_BILLING_IDENTITY_PUBLIC_KEY={self.billing_identity_public_key}",
                f"POSTGRES_PASSWORD={self.postgres_password}",
                "",
            ]
        )
