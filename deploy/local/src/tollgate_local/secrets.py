"""Development secrets: generated once per state folder, never committed, never defaults."""

import json
import secrets
from dataclasses import asdict, dataclass
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

    @classmethod
    def generate(cls) -> "StackSecrets":
        identity = generate_keypair()
        user_token = generate_keypair()
        return cls(
            identity_private_key=identity[0],
            identity_public_key=identity[1],
            user_token_private_key=user_token[0],
            user_token_public_key=user_token[1],
            superadmin_password=secrets.token_urlsafe(18),
            postgres_password=secrets.token_urlsafe(18),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> "StackSecrets":
        if path.exists():
            return cls(**json.loads(path.read_text()))
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
                f"POSTGRES_PASSWORD={self.postgres_password}",
                "",
            ]
        )
