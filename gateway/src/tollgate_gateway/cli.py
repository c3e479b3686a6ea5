"""tollgate-gateway serve"""

import argparse

from tollgate_gateway.config import GatewaySettings
from tollgate_shared.app import serve as serve_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default: TOLLGATE_GATEWAY_WORKERS, 1); each is a "
        "replica of its own for rate limits, usage spool and key cache",
    )
    arguments = parser.parse_args()
    if arguments.workers is None:
        arguments.workers = GatewaySettings().workers
    serve_app(
        "tollgate_gateway.app:create_app",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
    )


if __name__ == "__main__":
    main()
