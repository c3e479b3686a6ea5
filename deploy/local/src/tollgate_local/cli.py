"""tollgate-dev: run the whole stack locally (`make dev`), or print fresh secrets for compose."""

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tollgate_local.secrets import StackSecrets
from tollgate_local.stack import Ports, Stack, StackInfo


def banner(info: StackInfo) -> str:
    database = (
        f"embedded, data in {info.state_dir / 'postgres'}"
        if info.database == "embedded"
        else "external (TOLLGATE_DATABASE_URL)"
    )
    return f"""
Tollgate is running (dev mode). Press Ctrl-C to stop.

  Gateway     {info.gateway_url}    API docs: {info.gateway_url}/docs
  keys        {info.keys_url}
  metering    {info.metering_url}
  billing     {info.billing_url}
  Demo API    {info.demo_upstream_url}    routed at {info.gateway_url}/api/demo
  PostgreSQL  {database}
  NATS        {info.nats_url} (JetStream)
  Logs        {info.state_dir / "logs"}

Demo organisation: {info.demo.email} / {info.demo.password}
  API key     {info.demo.api_key}

Try it:
  curl -H "Authorization: Bearer {info.demo.api_key}" {info.gateway_url}/api/demo/hello
  curl -H "Authorization: Bearer {info.demo.api_key}" {info.gateway_url}/v1/limits
  curl -H "Authorization: Bearer {info.demo.api_key}" {info.gateway_url}/v1/entitlements
  curl -H "Authorization: Bearer {info.demo.api_key}" {info.gateway_url}/v1/billing/info

Platform super admin: {info.superadmin_email} / {info.superadmin_password}
"""


def up(state_dir: Path, ports: Ports) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack.from_environment(state_dir=state_dir, ports=ports)
    print("Starting Tollgate: PostgreSQL, NATS, migrations, services...", flush=True)
    info = stack.start()
    print(banner(info), flush=True)
    try:
        while not stop.wait(1.0):
            if dead := [name for name, p in stack.processes.items() if not p.running]:
                print(f"{', '.join(dead)} stopped unexpectedly; see {info.state_dir / 'logs'}")
                return 1
    finally:
        print("Stopping Tollgate...", flush=True)
        stack.stop()
        print("Stopped. Data is kept in", info.state_dir, flush=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-dev", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".tollgate"))
    commands = parser.add_subparsers(dest="command")
    up_command = commands.add_parser("up", help="start the whole stack (default)")
    up_command.add_argument(
        "--free-ports", action="store_true", help="pick free ports instead of 8080, 8101, ..."
    )
    commands.add_parser("keygen", help="print fresh secrets as .env lines for docker compose")
    arguments = parser.parse_args()
    if arguments.command == "keygen":
        sys.stdout.write(StackSecrets.generate().as_env_file())
        return
    free_ports = getattr(arguments, "free_ports", False)
    sys.exit(up(arguments.state_dir, Ports.free() if free_ports else Ports.dev()))


if __name__ == "__main__":
    main()
