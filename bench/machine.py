"""What the figures were measured on: they mean little without the machine beside them."""

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("gateway/src", "services", "shared/src", "deploy/local/src")
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


def _revision() -> str:
    """The commit measured, and whether the code the stack runs differed from it."""
    git = ["git", "-C", str(REPOSITORY)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", *CODE_FOLDERS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} + uncommitted changes in {', '.join(CODE_FOLDERS)}" if changed else commit


def describe_machine(**tools: str) -> list[tuple[str, str]]:
    """The machine, Python and its packages, then each tool given (name=version)."""
    load_1, load_5, _ = os.getloadavg()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return [
        ("tollgate revision", _revision()),
        ("cpu", f"{os.cpu_count()} cores, {_cpu_model()}"),
        ("memory", _memory_gib()),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("load average before the run", f"{load_1:.2f} (1 min), {load_5:.2f} (5 min)"),
        ("python", python),
        ("python packages", ", ".join(f"{name} {_version(name)}" for name in PACKAGES)),
        *tools.items(),
    ]
