"""The launcher's secrets: billing's own key pair, also for a state folder made before it."""

import json
from dataclasses import asdict
from pathlib import Path

from tollgate_local.secrets import StackSecrets
from tollgate_shared.identity import service_signer, service_verifier


def _billing_pair_works(secrets: StackSecrets) -> None:
    token = service_signer(
        secrets.billing_identity_private_key, caller="billing", callee="metering"
    ).sign({"ptype": "service", "sub": "billing"})
    verifier = service_verifier(
        secrets.billing_identity_public_key, caller="billing", callee="metering"
    )
    assert verifier.verify(token)["sub"] == "billing"


def test_a_new_state_folder_gets_billings_key_pair(tmp_path: Path) -> None:
    created = StackSecrets.load_or_create(tmp_path / "secrets.json")
    _billing_pair_works(created)
    assert StackSecrets.load_or_create(tmp_path / "secrets.json") == created  # kept


def test_an_older_state_folder_gains_the_pair_and_keeps_everything_else(tmp_path: Path) -> None:
    older = asdict(StackSecrets.generate())
    del older["billing_identity_private_key"], older["billing_identity_public_key"]
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(older))
    loaded = StackSecrets.load_or_create(path)
    _billing_pair_works(loaded)
    assert {name: getattr(loaded, name) for name in older} == older
    assert StackSecrets.load_or_create(path) == loaded  # written back, not made anew each start


def test_keygen_prints_both_halves() -> None:
    lines = dict(
        line.split("=", 1) for line in StackSecrets.generate().as_env_file().splitlines() if line
    )
    assert lines["TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY"]
    assert lines["TOLLGATE_METERING_BILLING_IDENTITY_PUBLIC_KEY"]
