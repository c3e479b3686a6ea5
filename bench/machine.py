"""What the figures were measured on: they mean little without the machine beside them."""

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "fastapi",
    "starlette",
    "aiohttp",
    "httpx",
    "httpcore",
    "nats-py",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(**tools: str) -> list[tuple[str, str]]:
    """The machine, Python and its packages, then each tool given (name=version)."""
    load_1, load_5, _ = os.getloadavg()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return [
        ("cpu", f"{os.cpu_count()} cores, {_cpu_model()}"),
        ("memory", _memory_gib()),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("load average before the run", f"{load_1:.2f} (1 min), {load_5:.2f} (5 min)"),
        ("python", python),
        ("python packages", ", ".join(f"{name} {_version(name)}" for name in PACKAGES)),
        *tools.items(),
    ]
