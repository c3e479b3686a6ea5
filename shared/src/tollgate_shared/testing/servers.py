"""Where tests find PostgreSQL and NATS: env URLs, else embedded servers, else testcontainers."""

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tollgate_shared.embedded import EmbeddedNats, EmbeddedPostgres


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _docker_answers() -> bool:
    try:
        import docker  # comes with testcontainers

        docker.from_env().ping()
        return True
    except Exception:
        return False


@contextmanager
def postgres_server(work_dir: Path) -> Iterator[str]:
    """Yield a server-level URL (database 'postgres') for creating test databases."""
    if url := os.environ.get("TOLLGATE_TEST_DATABASE_URL"):
        yield url
        return
    try:
        embedded = EmbeddedPostgres(work_dir / "pgdata")
        # xdist workers share one data directory; starting it twice at once fails.
        with _exclusive(work_dir / "pgdata.lock"):
            url = embedded.start()
    except ImportError:
        if not _docker_answers():
            raise
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    try:
        yield url
    finally:
        embedded.stop()


@contextmanager
def nats_server(work_dir: Path) -> Iterator[str]:
    if url := os.environ.get("TOLLGATE_TEST_NATS_URL"):
        yield url
        return
    try:
        embedded = EmbeddedNats(work_dir / f"nats-{uuid.uuid4().hex[:8]}")
        url = embedded.start()
    except FileNotFoundError:
        if not _docker_answers():
            raise
        from testcontainers.nats import NatsContainer

        with NatsContainer().with_command("-js") as container:
            yield container.nats_uri()
        return
    try:
        yield url
    finally:
        embedded.stop()


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    plain = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return plain.set(database=name).render_as_string(hide_password=False)
