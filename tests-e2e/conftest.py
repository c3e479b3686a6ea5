"""The whole stack, started by the same launcher as `make dev`, on free ports and temp state."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tollgate_local.stack import Ports, Stack, StackInfo

REPOSITORY = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REPOSITORY / "tests-e2e" in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """Embedded PostgreSQL and NATS, exactly as on a fresh machine."""
    with Stack(state_dir=tmp_path_factory.mktemp("stack"), ports=Ports.free()) as info:
        yield info
