"""wrk as the load generator: a fixed number of connections, each sending its next request as
soon as the previous one is answered (closed loop), for a fixed time.

A small Lua script prints wrk's own summary as JSON (exact microseconds, errors by kind), so
nothing depends on parsing wrk's human output. The Authorization header travels through an
environment variable, so the key is not in any process's command line.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MARKER = "WRK_JSON "
AUTHORIZATION_VARIABLE = "BENCH_AUTHORIZATION"

_SCRIPT = r"""
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"non_2xx_3xx":%d,'
    .. '"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,'
    .. '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""
assert MARKER in _SCRIPT and AUTHORIZATION_VARIABLE in _SCRIPT


@dataclass(frozen=True)
class Load:
    """One wrk load shape."""

    name: str
    threads: int
    connections: int
    seconds: int
    warmup_seconds: int

    def describe(self) -> str:
        return (
            f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s "
            f"after a {self.warmup_seconds} s warm-up"
        )


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    connect_errors: int
    read_errors: int
    write_errors: int
    non_2xx_3xx: int
    timeouts: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    mean_us: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / (self.duration_us / 1_000_000)

    @property
    def errors(self) -> int:
        """Socket errors and timeouts; non-2xx answers are counted apart."""
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def p50_ms(self) -> float:
        return self.p50_us / 1000

    @property
    def p99_ms(self) -> float:
        return self.p99_us / 1000


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise FileNotFoundError("wrk is not installed: run `make bench-gateway`")
    return found


def wrk_version() -> str:
    completed = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True)
    return (completed.stdout or completed.stderr).split(" [")[0].removeprefix("wrk ").strip()


class Wrk:
    def __init__(self, directory: Path) -> None:
        self.binary = wrk_binary()
        self.script = directory / "summary.lua"
        self.script.write_text(_SCRIPT)

    def run(
        self, url: str, load: Load, *, seconds: int | None = None, authorization: str = ""
    ) -> WrkResult:
        duration = seconds if seconds is not None else load.seconds
        command = [
            self.binary,
            f"--threads={load.threads}",
            f"--connections={load.connections}",
            f"--duration={duration}s",
            "--timeout=10s",
            f"--script={self.script}",
            url,
        ]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, AUTHORIZATION_VARIABLE: authorization},
            timeout=duration + 60,
        )
        for line in completed.stdout.splitlines():
            if line.startswith(MARKER):
                return WrkResult(**json.loads(line.removeprefix(MARKER)))
        raise RuntimeError(
            f"wrk printed no summary (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )

    def measure(self, url: str, load: Load, *, authorization: str = "") -> WrkResult:
        """A warm-up run whose figures are dropped, then the measured run."""
        if load.warmup_seconds:
            self.run(url, load, seconds=load.warmup_seconds, authorization=authorization)
        return self.run(url, load, authorization=authorization)
