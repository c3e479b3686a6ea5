"""nginx as a foreground child process with a generated config: the static upstream and the
reference proxy of the gateway benchmark."""

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tollgate_shared.embedded import wait_for_port

# What the upstream answers: a small JSON body, like a typical API response.
UPSTREAM_BODY = '{"message":"hello from the benchmark upstream"}'

_COMMON = """\
daemon off;
master_process on;
worker_processes {workers};
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{
    worker_connections 8192;
    multi_accept on;
}}
http {{
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{body}
}}
"""

_UPSTREAM = """\
    access_log off;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            return 200 '{response}';
        }}
    }}
"""

# A well-tuned reverse proxy: keep-alive to the upstream (HTTP/1.1, no Connection header) and
# one access log line per request, as the gateway writes one too.
_PROXY = """\
    access_log {directory}/access.log combined;
    upstream benchmark_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://benchmark_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise FileNotFoundError("nginx is not installed: run `make bench-gateway`")
    return found


def nginx_version() -> str:
    completed = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=True)
    return completed.stderr.strip().removeprefix("nginx version: ")


class Nginx:
    """One nginx master in the foreground (daemon off), stopped with SIGQUIT then SIGKILL."""

    def __init__(self, *, name: str, directory: Path, port: int, config_body: str, workers: str):
        self.name, self.port = name, port
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "nginx.conf"
        self.config.write_text(
            _COMMON.format(workers=workers, directory=self.directory, body=config_body)
        )
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def upstream(cls, *, directory: Path, port: int, workers: str = "1") -> "Nginx":
        body = _UPSTREAM.format(port=port, response=UPSTREAM_BODY)
        return cls(
            name="upstream", directory=directory, port=port, config_body=body, workers=workers
        )

    @classmethod
    def proxy(
        cls, *, directory: Path, port: int, upstream_port: int, workers: str = "auto"
    ) -> "Nginx":
        body = _PROXY.format(port=port, upstream_port=upstream_port, directory=directory / "proxy")
        return cls(name="proxy", directory=directory, port=port, config_body=body, workers=workers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        binary = nginx_binary()
        prefix = ["-p", str(self.directory), "-e", str(self.directory / "error.log")]
        subprocess.run([binary, *prefix, "-t", "-q", "-c", str(self.config)], check=True)
        log = (self.directory / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [binary, *prefix, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"nginx {self.name} did not start; see {self.directory / 'error.log'}"
            ) from None

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGQUIT)  # graceful: master and workers
        deadline = time.monotonic() + 10
        while self._process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._process.poll() is None:
            # The master forwards SIGTERM to its workers ("fast shutdown").
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> "Nginx":
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
