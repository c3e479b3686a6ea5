"""pytest plugin (loaded with -p tollgate_shared.testing.plugin): real servers for every test.

Fixtures: postgres_server_url, nats_url (session), new_database (factory), identity_keys,
mint_identity (signed identity tokens as the gateway would send them).
"""

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tollgate_shared.identity import IDENTITY_HEADER, Identity, generate_keypair, identity_signer
from tollgate_shared.testing.servers import create_database, nats_server, postgres_server


def pytest_configure(config: pytest.Config) -> None:
    # pgserver logs from an atexit hook after pytest closed its capture streams: pure noise.
    logging.getLogger("pgserver").disabled = True


MEASUREMENT = "measurement"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured (record_property("measurement", "...")) at the end of the
    run, so figures reach the CI log even from xdist workers, whose prints are swallowed."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport) and report.when == "call"
        for name, value in report.user_properties
        if name == MEASUREMENT
    ]
    if lines:
        terminalreporter.section("measurements")
        for line in lines:
            terminalreporter.write_line(line)


def _shared_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Under xdist every worker has its own basetemp; their parent is shared by the run.
    return tmp_path_factory.getbasetemp().parent


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(_shared_work_dir(tmp_path_factory)) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.getbasetemp()) as url:
        yield url


@pytest.fixture(scope="session")
def new_database(postgres_server_url: str) -> Callable[[str], str]:
    """Factory: an empty database named after its purpose and this xdist worker."""

    def make(purpose: str) -> str:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"test_{purpose}_{worker}_{uuid.uuid4().hex[:6]}"
        return create_database(postgres_server_url, name)

    return make


@pytest.fixture(scope="session")
def identity_keys() -> tuple[str, str]:
    """(private, public) Ed25519 pair standing in for the gateway's identity keys."""
    return generate_keypair()


@pytest.fixture(scope="session")
def mint_identity(identity_keys: tuple[str, str]) -> Callable[..., dict[str, str]]:
    """Headers carrying a gateway-signed identity token for the given principal."""
    signer = identity_signer(identity_keys[0])

    def mint(
        principal_type: str = "user",
        *,
        principal_id: str | None = None,
        org_id: uuid.UUID | None = None,
        roles: tuple[str, ...] = (),
        scopes: tuple[str, ...] = (),
        ttl_seconds: int | None = None,
    ) -> dict[str, str]:
        identity = Identity(
            principal_type=principal_type,  # type: ignore[arg-type]
            principal_id=principal_id,
            org_id=org_id,
            roles=frozenset(roles),
            scopes=frozenset(scopes),
        )
        return {IDENTITY_HEADER: signer.sign(identity.to_claims(), ttl_seconds=ttl_seconds)}

    return mint
