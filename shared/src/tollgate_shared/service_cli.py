"""The command line every service has: `tollgate-<service> migrate | serve`."""

import argparse
from pathlib import Path

from tollgate_shared.app import serve
from tollgate_shared.migrations import upgrade
from tollgate_shared.settings import DatabaseSettings


def run_service_command(*, service: str, default_port: int, migrations_dir: Path) -> None:
    """Parse argv and migrate the service's schema or serve `tollgate_<service>.app`."""
    parser = argparse.ArgumentParser(prog=f"tollgate-{service}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help=f"apply database migrations to the {service} schema")
    serve_command = commands.add_parser("serve", help="run the HTTP service")
    serve_command.add_argument("--host", default="127.0.0.1")
    serve_command.add_argument("--port", type=int, default=default_port)
    arguments = parser.parse_args()
    if arguments.command == "migrate":
        # Only TOLLGATE_DATABASE_URL: migrating needs none of the secrets that serve needs.
        database = DatabaseSettings()  # type: ignore[call-arg, unused-ignore]
        upgrade(migrations_dir=migrations_dir, database_url=database.database_url, schema=service)
    else:
        serve(f"tollgate_{service}.app:create_app", host=arguments.host, port=arguments.port)
