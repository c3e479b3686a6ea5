"""tollgate-gateway serve"""

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args()
    uvicorn.run(
        "tollgate_gateway.app:create_app",
        factory=True,
        host=arguments.host,
        port=arguments.port,
        log_config=None,
        proxy_headers=False,
        # Client headers beyond this size are refused by the server with 431, before routing.
        h11_max_incomplete_event_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
