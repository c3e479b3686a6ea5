"""A py-spy profile of the gateway under load, summarised by where the time goes.

py-spy samples the gateway's Python stacks from outside the process (no code change, small
overhead); with several uvicorn workers, `--subprocesses` on the supervisor samples every worker.
Idle samples (an event loop waiting in epoll) are left out, so the shares below are shares of
the time the gateway's processes were busy. With several workers, so are the samples of two
kinds of thread blocked reading a pipe, which py-spy does not see as idle: the thread in each
worker that answers the supervisor's pings, and multiprocessing's resource tracker.

Each busy sample is put in one category: walking from the innermost frame outwards, the first
frame whose file belongs to a known component names it. So json.dumps called by structlog counts
as "access log", and a uuid4() inside the identity-token signer as "identity token".
"""

import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY_VERSION = "0.4.3"

# (category, markers in a frame's file path); the first category whose marker matches the
# innermost frame that matches anything wins. More specific components come first.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    # Python does not cache a failed import: each one searches sys.path again (stat calls).
    ("failed imports at run time (importlib searching sys.path)", ("importlib",)),
    (
        "identity token: EdDSA JWT signing (pyjwt, cryptography)",
        (
            "jwt/",
            "cryptography/",
            "tollgate_shared/identity.py",
        ),
    ),
    (
        "usage emission: event, spool write, NATS publishing",
        ("tollgate_gateway/usage/", "nats/"),
    ),
    ("access log and log context (structlog)", ("structlog/", "tollgate_shared/logging.py")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    (
        "upstream client (httpx, httpcore, h11; aiohttp)",
        (
            "httpx/",
            "httpcore/",
            "h11/",
            "aiohttp/",
            "yarl/",
            "multidict/",
        ),
    ),
    ("authentication and key cache", ("tollgate_gateway/authentication/", "api_key_format.py")),
    (
        "gateway forwarding: checks, headers, route table",
        (
            "tollgate_gateway/routing/",
            "tollgate_gateway/forwarding.py",
            "tollgate_gateway/authorization.py",
        ),
    ),
    ("request middleware (request id, access line, metrics)", ("tollgate_shared/middleware.py",)),
    (
        "FastAPI/Starlette: routing, request, response, error middleware",
        (
            "fastapi/",
            "starlette/",
            "tollgate_gateway/app.py",
            "tollgate_shared/errors.py",
        ),
    ),
    ("anyio (socket attributes for httpcore, task groups for Starlette)", ("anyio/",)),
    ("uvicorn: HTTP parsing and protocol (httptools)", ("uvicorn/protocols/",)),
    ("uvicorn: other", ("uvicorn/",)),
    # With uvloop the loop itself is C: samples whose innermost Python frame is asyncio's
    # Runner.run are uvloop reading and writing sockets and scheduling callbacks.
    ("event loop: uvloop (C) and asyncio helpers", ("asyncio/", "uvloop/")),
]
OTHER = "other"
# (file marker, qualified name) of functions whose threads wait on a pipe, though py-spy
# samples them as busy.
WAITING: list[tuple[str, str]] = [
    ("uvicorn/supervisors/multiprocess.py", "Process.always_pong "),
    ("multiprocessing/resource_tracker.py", "main "),
]


@dataclass
class ProfileSummary:
    subject: str  # what was profiled, and how
    samples: int
    seconds: int
    rate: int
    categories: list[tuple[str, int]]  # (category, samples), largest first
    leaf_functions: list[tuple[str, int]]  # innermost frames (self time), largest first
    inclusive: list[tuple[str, int]]  # chosen functions with everything they call
    waiting_left_out: int  # samples of WAITING threads, not in `samples`

    def share(self, count: int) -> str:
        return f"{100 * count / self.samples:.1f} %" if self.samples else "-"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "samples": self.samples,
            "seconds": self.seconds,
            "rate": self.rate,
            "categories": self.categories,
            "leaf_functions": self.leaf_functions,
            "inclusive": self.inclusive,
            "waiting_left_out": self.waiting_left_out,
        }

    def to_markdown(self) -> list[str]:
        lines = [
            f"Where the busy time of {self.subject} goes (py-spy {PY_SPY_VERSION}, "
            f"{self.seconds} s at {self.rate} Hz under the saturated load, "
            f"{self.samples:,} busy samples{self._left_out()}):",
            "",
            "| component the time is spent in (innermost known frame) | share |",
            "|---|--:|",
        ]
        lines += [f"| {name} | {self.share(count)} |" for name, count in self.categories]
        lines += ["", "| function, with all it calls | share |", "|---|--:|"]
        lines += [f"| `{name}` | {self.share(count)} |" for name, count in self.inclusive]
        lines += ["", "| innermost Python function (self time) | share |", "|---|--:|"]
        lines += [f"| `{name}` | {self.share(count)} |" for name, count in self.leaf_functions]
        return lines

    def _left_out(self) -> str:
        if not self.waiting_left_out:
            return ""
        return (
            f"; {self.waiting_left_out:,} more, of threads blocked on a pipe (uvicorn's "
            "ping answers, multiprocessing's resource tracker), left out as idle"
        )


# Functions whose inclusive time answers "what does X cost": (label, file marker, qualified name).
INCLUSIVE: list[tuple[str, str, str]] = [
    (
        "the request task: our middleware and all it awaits (not the body-streaming task)",
        "tollgate_shared/middleware.py",
        "RequestContextMiddleware.__call__ ",
    ),
    (
        "Gateway.handle: check, route, authenticate, sign, forward",
        "tollgate_gateway/forwarding.py",
        "Gateway.handle ",
    ),
    (
        "UpstreamProxy.forward: the upstream request until response headers",
        "tollgate_gateway/routing/proxy.py",
        "UpstreamProxy.forward ",
    ),
    (
        "StreamingResponse: body from httpx to the client, then close (own task)",
        "starlette/responses.py",
        "StreamingResponse.",
    ),
    (
        "httpcore: failed `import sniffio` (current_async_library)",
        "httpcore/_synchronization.py",
        "current_async_library ",
    ),
    (
        "httpcore: pool scans every connection (has_expired, poll)",
        "httpcore/",
        "AsyncHTTPConnection.has_expired ",
    ),
    ("TokenSigner.sign: the identity token", "tollgate_shared/identity.py", "TokenSigner.sign "),
    (
        "Authenticator.authenticate: key format, hash, cache",
        "tollgate_gateway/authentication/",
        "Authenticator.authenticate ",
    ),
    (
        "usage: record(), the event built and appended to the spool",
        "tollgate_gateway/usage/middleware.py",
        "record ",
    ),
    (
        "usage: the background publisher (spool reads, NATS batches)",
        "tollgate_gateway/usage/publisher.py",
        "",
    ),
    (
        "structlog: processing and writing log lines",
        "structlog/_base.py",
        "BoundLoggerBase._proxy_to_logger ",
    ),
    (
        "uvicorn: data_received (HTTP parsing, httptools)",
        "uvicorn/protocols/http/",
        "HttpToolsProtocol.data_received ",
    ),
]


def py_spy_binary() -> str | None:
    return shutil.which("py-spy")


def record_profile(
    *,
    pid: int,
    subprocesses: bool,
    subject: str,
    seconds: int,
    output: Path,
    load: Callable[[int], object],
) -> ProfileSummary | None:
    """Record `seconds` of the process (and its children, with `subprocesses`) under `load`
    (called with a duration, in a thread)."""
    binary = py_spy_binary()
    if binary is None:
        print("[bench] py-spy not found: no profile (make bench-gateway provides it)")
        return None
    rate = 250
    worker = threading.Thread(target=load, args=(seconds + 4,), daemon=True)
    worker.start()
    time.sleep(2)  # the load is under way before sampling starts
    completed = subprocess.run(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(output),
            *(["--subprocesses"] if subprocesses else []),
        ],
        capture_output=True,
        text=True,
    )
    worker.join()
    if completed.returncode != 0 or not output.exists():
        print(f"[bench] py-spy failed: {completed.stderr.strip()}")
        return None
    return summarise(output.read_text(), subject=subject, seconds=seconds, rate=rate)


def _file_of(frame: str) -> str:
    # A raw frame reads "function (path/to/file.py:123)".
    return frame.rsplit("(", 1)[-1].rstrip(")") if frame.endswith(")") else ""


def _function_of(frame: str) -> str:
    name, _, location = frame.rpartition(" (")
    file = location.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(file.split('/')[-2:])})"


def _calls_any(frames: list[str], functions: list[tuple[str, str]]) -> bool:
    """Whether the stack goes through one of the (file marker, qualified name) functions."""
    return any(
        frame.startswith(function) and marker in _file_of(frame)
        for frame in frames
        for marker, function in functions
    )


def categorise(frames: list[str]) -> str:
    for frame in reversed(frames):
        file = _file_of(frame)
        for category, markers in CATEGORIES:
            if any(marker in file for marker in markers):
                return category
    return OTHER


def summarise(raw: str, *, subject: str, seconds: int, rate: int, top: int = 15) -> ProfileSummary:
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame.endswith(")")]
        if not frames:
            continue
        if _calls_any(frames, WAITING):
            waiting += count
            continue
        total += count
        categories[categorise(frames)] += count
        leaves[_function_of(frames[-1])] += count
        for label, marker, function in INCLUSIVE:
            if _calls_any(frames, [(marker, function)]):
                inclusive[label] += count
    return ProfileSummary(
        subject=subject,
        samples=total,
        seconds=seconds,
        rate=rate,
        categories=categories.most_common(),
        leaf_functions=leaves.most_common(top),
        inclusive=[(label, inclusive[label]) for label, _, _ in INCLUSIVE],
        waiting_left_out=waiting,
    )
