"""tollgate-metering migrate | serve"""

import argparse

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_shared.app import serve as serve_app
from tollgate_shared.migrations import upgrade
from tollgate_shared.settings import DatabaseSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-metering")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations to the metering schema")
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8103)
    arguments = parser.parse_args()
    if arguments.command == "migrate":
        # Only TOLLGATE_DATABASE_URL: migrating needs none of the settings that serve needs.
        database = DatabaseSettings()  # type: ignore[call-arg, unused-ignore]
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database.database_url, schema=SERVICE)
    else:
        serve_app("tollgate_metering.app:create_app", host=arguments.host, port=arguments.port)


if __name__ == "__main__":
    main()
