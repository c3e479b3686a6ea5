"""`make dev` runs `tollgate-dev up`: it prints a working curl line, keeps data across restarts
and stops everything on Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tollgate_local.cli import banner
from tollgate_local.stack import Ports, Stack


def _curl_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]


def test_banner_curl_lines_work(stack):
    answers = []
    for line in _curl_lines(banner(stack)):
        result = subprocess.run(
            ["bash", "-c", line + " -s -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, status = result.stdout.rsplit("\n", 1)
        assert status == "200", line
        answers.append(body)
    hello, limits, entitlements, billing = answers
    assert stack.demo.organization_id in hello
    assert '"org-hour"' in limits
    assert '"meter":"api_requests"' in entitlements
    assert '"subscription":{' in billing


def test_restart_keeps_data(tmp_path: Path):
    ports = Ports.free()
    with Stack(state_dir=tmp_path, ports=ports) as first:
        signup = httpx.post(
            f"{first.gateway_url}/v1/signup",
            json={
                "organization_name": "Persistent",
                "email": "persist@example.com",
                "password": "a long enough passphrase",
            },
        )
        assert signup.status_code == 201
    with Stack(state_dir=tmp_path, ports=ports) as second:
        assert second.demo == first.demo  # reused, not signed up again
        login = httpx.post(
            f"{second.gateway_url}/v1/auth/login",
            json={"email": "persist@example.com", "password": "a long enough passphrase"},
        )
        assert login.status_code == 200
        hello = httpx.get(
            f"{second.gateway_url}/api/demo/hello",
            headers={"Authorization": f"Bearer {signup.json()['api_key']['key']}"},
        )
        assert hello.status_code == 200


def test_dev_command_starts_prints_and_stops_cleanly(tmp_path: Path):
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TOLLGATE_DATABASE_URL", "TOLLGATE_NATS_URL")
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tollgate_local.cli",
            "--state-dir",
            str(tmp_path),
            "up",
            "--free-ports",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    output = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while "Platform super admin" not in output:
            line = process.stdout.readline()
            assert line, f"launcher exited early:\n{output}"
            output += line
            assert time.monotonic() < deadline, output
        gateway = re.search(r"Gateway\s+(http://\S+)", output)
        assert gateway is not None, output
        curl = subprocess.run(
            ["bash", "-c", _curl_lines(output)[0] + " -s -o /dev/null -w '%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.stdout == "200", output
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output + rest
    assert "Stopped." in rest
    with httpx.Client() as client:
        try:
            client.get(f"{gateway.group(1)}/healthz", timeout=1)
            still_up = True
        except httpx.HTTPError:
            still_up = False
    assert not still_up


def test_external_servers_are_used_when_given(new_database, nats_url, tmp_path: Path):
    """TOLLGATE_DATABASE_URL / TOLLGATE_NATS_URL: the launcher starts neither embedded server."""
    stack = Stack(
        state_dir=tmp_path, ports=Ports.free(), database_url=new_database("e2e"), nats_url=nats_url
    )
    with stack as info:
        assert info.database == "external"
        assert info.nats_url == nats_url
        assert not (tmp_path / "postgres").exists() and not (tmp_path / "nats").exists()
        hello = httpx.get(
            f"{info.gateway_url}/api/demo/hello",
            headers={"Authorization": f"Bearer {info.demo.api_key}"},
        )
        assert hello.status_code == 200
