"""The command line every service has: `tollgate-<service> migrate | serve`, plus the
service's own operator commands."""

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tollgate_shared.app import serve
from tollgate_shared.migrations import upgrade
from tollgate_shared.settings import DatabaseSettings


@dataclass(frozen=True)
class OperatorCommand:
    help: str
    run: Callable[[], str]  # does the work with the service's settings; returns what to print


def run_service_command(
    *,
    service: str,
    default_port: int,
    migrations_dir: Path,
    operator_commands: Mapping[str, OperatorCommand] | None = None,
) -> None:
    """Parse argv and migrate the service's schema, serve `tollgate_<service>.app`, or run one
    of the service's operator commands."""
    operator_commands = operator_commands or {}
    parser = argparse.ArgumentParser(prog=f"tollgate-{service}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help=f"apply database migrations to the {service} schema")
    for name, command in operator_commands.items():
        commands.add_parser(name, help=command.help)
    serve_command = commands.add_parser("serve", help="run the HTTP service")
    serve_command.add_argument("--host", default="127.0.0.1")
    serve_command.add_argument("--port", type=int, default=default_port)
    arguments = parser.parse_args()
    if arguments.command == "migrate":
        # Only TOLLGATE_DATABASE_URL: migrating needs none of the secrets that serve needs.
        database = DatabaseSettings()  # type: ignore[call-arg, unused-ignore]
        upgrade(migrations_dir=migrations_dir, database_url=database.database_url, schema=service)
    elif arguments.command in operator_commands:
        print(operator_commands[arguments.command].run())
    else:
        serve(f"tollgate_{service}.app:create_app", host=arguments.host, port=arguments.port)
